"""The MQTT receiver as a child process, so that paho's packet handling gets a core of its own.

The child speaks MQTT exactly like ``IngestSubscriber`` (persistent MQTT 5 session, QoS 1,
manual acknowledgements) and forwards raw messages to the parent in batches over a pipe; the
parent sends back which messages it has stored, and only then does the child acknowledge them to
the broker. If either side dies, the broker still holds every unacknowledged message.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import pickle
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from cloud.errors import TransientError
from cloud.gc_tuning import tune_gc_for_ingest
from cloud.mqtt import (
    SESSION_EXPIRY_S,
    Delivery,
    DeliveryQueue,
    ingest_topics,
    wall_clock_ms,
)
from cloud.wire import RawMessage

FORWARD_MAX = 1000  # messages per pipe write
FORWARD_EVERY_S = 0.002


@dataclass(frozen=True, slots=True)
class ReceiverConfig:
    host: str
    port: int
    client_id: str
    topics: tuple[str, ...]
    username: str | None
    password: str | None
    clean_start: bool
    tls_ca: str | None = None  # TLS with this CA file ("" for the system's CAs); None: plain
    tls_cert: str | None = None  # a client certificate to present (with tls_key)
    tls_key: str | None = None


def _child(config: ReceiverConfig, conn: Connection) -> None:  # pragma: no cover - child process
    import signal

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the child
    tune_gc_for_ingest()  # paho allocates several objects per message
    inbox: deque[tuple[str, bytes, int, int]] = deque()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=config.client_id, protocol=mqtt.MQTTv5
    )
    client.manual_ack_set(True)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    if config.username:
        client.username_pw_set(config.username, config.password)
    if config.tls_ca is not None:
        client.tls_set(
            ca_certs=config.tls_ca or None, certfile=config.tls_cert, keyfile=config.tls_key
        )
    send_lock = threading.Lock()

    def send(tag: str, value: Any) -> None:
        with send_lock:
            conn.send_bytes(pickle.dumps((tag, value), protocol=pickle.HIGHEST_PROTOCOL))

    accepted = threading.Event()  # the broker has accepted a connection at least once

    def on_connect(c: mqtt.Client, u: object, f: object, reason: Any, p: object) -> None:
        if reason.is_failure:
            send("error", f"broker refused the ingest connection: {reason}")
            return
        accepted.set()
        c.subscribe([(t, 1) for t in config.topics])
        send("connected", True)

    def on_disconnect(c: mqtt.Client, u: object, f: object, reason: Any, p: object) -> None:
        # At shutdown the parent may have closed the pipe already: nobody is left to tell.
        with contextlib.suppress(OSError):
            if not accepted.is_set():  # closed before any CONNACK: a refusal, say so at once
                hint = (
                    " (does it require a client certificate?)" if config.tls_ca is not None else ""
                )
                send(
                    "error",
                    f"the MQTT broker at {config.host}:{config.port} closed the connection "
                    f"before accepting it{hint}",
                )
            send("connected", False)

    def on_message(c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        inbox.append((msg.topic, bytes(msg.payload), msg.mid, msg.qos))

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_message = on_message
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = SESSION_EXPIRY_S
    try:
        client.connect(
            config.host, config.port, keepalive=30, clean_start=config.clean_start, properties=props
        )
    except OSError as exc:
        send("error", f"cannot reach the MQTT broker at {config.host}:{config.port}: {exc}")
        return
    client.loop_start()
    try:
        while True:
            while conn.poll(FORWARD_EVERY_S):
                tag, value = pickle.loads(conn.recv_bytes())  # noqa: S301 - our own parent
                if tag == "ack":
                    for mid, qos in value:
                        client.ack(mid, qos)
                elif tag == "publish":
                    topic, payload, qos, retain = value
                    client.publish(topic, payload, qos=qos, retain=retain)
                elif tag == "stop":
                    return
            batch: list[tuple[str, bytes, int, int]] = []
            while inbox and len(batch) < FORWARD_MAX:
                batch.append(inbox.popleft())
            if batch:
                send("messages", batch)
    except (EOFError, OSError):
        return  # the parent is gone; the broker keeps what was not acknowledged
    finally:
        client.disconnect()
        client.loop_stop()


class ProcessIngestSubscriber(DeliveryQueue):
    """Same interface as ``IngestSubscriber``; the MQTT client runs in a child process."""

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str = "forewarn-ingest",
        shared_group: str | None = None,
        username: str | None = None,
        password: str | None = None,
        clock_ms: Callable[[], int] = wall_clock_ms,
        clean_start: bool = False,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
    ) -> None:
        super().__init__()
        topics = tuple(ingest_topics(shared_group))
        self.host, self.port = host, port
        self._config = ReceiverConfig(
            host, port, client_id, topics, username, password, clean_start, tls_ca, tls_cert,
            tls_key,
        )  # fmt: skip
        self._clock = clock_ms
        self.connected = threading.Event()
        self.received = 0
        self.connected_at: float | None = None  # perf_counter() of the latest connection
        self._error: str | None = None
        self._conn: Connection | None = None
        self._proc: Any = None
        self._reader: threading.Thread | None = None
        self._send_lock = threading.Lock()

    def topics(self) -> list[str]:
        return list(self._config.topics)

    def start(self, timeout_s: float = 10.0) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe(duplex=True)
        self._conn = parent
        self._proc = ctx.Process(
            target=_child, args=(self._config, child), name="forewarn-mqtt-receiver", daemon=True
        )
        self._proc.start()
        child.close()
        self._reader = threading.Thread(
            target=self._read, args=(parent,), name="forewarn-receiver-pipe", daemon=True
        )
        self._reader.start()
        deadline = time.monotonic() + timeout_s + 10  # spawning a process takes a moment
        while time.monotonic() < deadline and not self.connected.is_set():
            if self._error is not None or not self._proc.is_alive():
                break
            self.connected.wait(0.05)
        if not self.connected.is_set():
            error = self._error or f"no CONNACK from the MQTT broker at {self.host}:{self.port}"
            self.stop()
            raise TransientError(error)

    def _read(self, conn: Connection) -> None:
        while True:
            try:
                tag, value = pickle.loads(conn.recv_bytes())  # noqa: S301 - our own child
            except (EOFError, OSError):
                self.connected.clear()
                return
            if tag == "messages":
                now = self._clock()
                for topic, payload, mid, qos in value:
                    self._queue.put(Delivery(RawMessage(topic, payload, now), mid, qos))
                self.received += len(value)
            elif tag == "connected":
                if value:
                    self.connected_at = time.perf_counter()
                    self.connected.set()
                else:
                    self.connected.clear()
            elif tag == "error":
                self._error = str(value)

    def _send(self, tag: str, value: object) -> None:
        if self._conn is None:
            raise TransientError("the MQTT receiver is not running")
        try:
            with self._send_lock:
                self._conn.send_bytes(pickle.dumps((tag, value), protocol=pickle.HIGHEST_PROTOCOL))
        except (OSError, ValueError) as exc:
            raise TransientError(f"the MQTT receiver process is gone: {exc}") from exc

    def stop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(TransientError):
                self._send("stop", None)
        if self._proc is not None:
            self._proc.join(timeout=10)
            if self._proc.is_alive():
                self._proc.terminate()
                self._proc.join(timeout=5)
        if self._conn is not None:
            self._conn.close()
        if self._reader is not None:
            self._reader.join(timeout=5)
        self.connected.clear()
        self._conn = self._proc = self._reader = None

    def ack(self, deliveries: list[Delivery]) -> None:
        acks = [(d.mid, d.qos) for d in deliveries if d.qos > 0]
        if acks:
            self._send("ack", acks)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self._send("publish", (topic, payload, qos, retain))
