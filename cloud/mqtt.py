"""The cloud's MQTT adapter (the only cloud module that imports paho).

Callbacks only hand messages to a queue. Messages are acknowledged to the broker (manual PUBACK)
only after the pipeline has stored them, so a crash between receipt and storage makes the broker
deliver them again instead of losing them; the pipeline deduplicates on ``(device_id, seq)``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from cloud.errors import TransientError
from cloud.wire import RawMessage

log = logging.getLogger(__name__)

# Any contract version: a device speaking an unknown version is dead-lettered with the reason
# "topic" instead of going unseen. The cloud's own downstream "cmd" topics are not subscribed.
INGEST_TOPICS = (
    "forewarn/+/+/+/telemetry",
    "forewarn/+/+/+/event",
    "forewarn/+/+/+/status",
    "forewarn/+/+/+/cmd/ack",
)
SESSION_EXPIRY_S = 7 * 86400


def ingest_topics(shared_group: str | None) -> list[str]:
    """The subscriptions of one ingest worker, as MQTT 5 shared subscriptions with a group."""
    if shared_group:
        return [f"$share/{shared_group}/{t}" for t in INGEST_TOPICS]
    return list(INGEST_TOPICS)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Delivery:
    """One received message and what is needed to acknowledge it."""

    message: RawMessage
    mid: int
    qos: int


class DeliveryQueue:
    """Where a receiver hands received messages to the ingest worker."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Delivery] = queue.SimpleQueue()

    def take(self, max_messages: int, timeout_s: float, linger_s: float = 0.0) -> list[Delivery]:
        """Up to ``max_messages`` deliveries; waits at most ``timeout_s`` for the first one.

        With ``linger_s``, once the first has come it waits up to that long for more to fill
        the group (Kafka's ``linger.ms``): a steady trickle is processed in groups of many
        messages rather than one by one, so each group's fixed costs (a store transaction, a
        core step) are shared. A backlog fills the group at once, with no wait.
        """
        out: list[Delivery] = []
        try:
            out.append(self._queue.get(timeout=timeout_s))
        except queue.Empty:
            return out
        until = time.monotonic() + linger_s
        while len(out) < max_messages:
            wait = until - time.monotonic()
            try:
                out.append(self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        return out

    def backlog(self) -> int:
        return self._queue.qsize()


class IngestSubscriber(DeliveryQueue):
    """Subscribes to every device's upstream topics with QoS 1 and a persistent session.

    With ``shared_group`` the subscriptions are MQTT 5 shared subscriptions
    (``$share/<group>/...``), so several ingest workers split the load.
    """

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
        """``tls_ca``: speak TLS and trust this CA file ("" trusts the system's CAs);
        ``tls_cert`` and ``tls_key``: present this client certificate."""
        super().__init__()
        self.host, self.port = host, port
        self._clock = clock_ms
        self._shared = shared_group
        self.connected = threading.Event()
        self.connected_at: float | None = None  # perf_counter() of the latest connection
        self.received = 0
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self._client.manual_ack_set(True)
        self._client.max_inflight_messages_set(1000)
        self._client.max_queued_messages_set(0)
        if username:
            self._client.username_pw_set(username, password)
        if tls_ca is not None:
            self._client.tls_set(ca_certs=tls_ca or None, certfile=tls_cert, keyfile=tls_key)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._clean_start = clean_start

    def topics(self) -> list[str]:
        return ingest_topics(self._shared)

    def start(self, timeout_s: float = 10.0) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        try:
            self._client.connect(
                self.host, self.port, keepalive=30, clean_start=self._clean_start, properties=props
            )
        except OSError as exc:
            raise TransientError(
                f"cannot reach the MQTT broker at {self.host}:{self.port}: {exc}"
            ) from exc
        self._client.loop_start()
        if not self.connected.wait(timeout_s):
            self.stop()
            raise TransientError(f"no CONNACK from the MQTT broker at {self.host}:{self.port}")

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.error("broker refused the ingest connection: %s", reason)
            return
        # Subscribing here means a reconnect resubscribes, whatever the broker kept.
        client.subscribe([(t, 1) for t in self.topics()])
        self.connected_at = time.perf_counter()
        self.connected.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.connected.clear()
        if reason.is_failure:
            log.warning("ingest lost the broker (%s); paho reconnects with backoff", reason)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self.received += 1
        raw = RawMessage(topic=msg.topic, payload=bytes(msg.payload), received_ms=self._clock())
        self._queue.put(Delivery(raw, msg.mid, msg.qos))

    def ack(self, deliveries: list[Delivery]) -> None:
        """Acknowledge processed deliveries to the broker (QoS 0 needs none)."""
        for d in deliveries:
            if d.qos > 0:
                self._client.ack(d.mid, d.qos)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Publish downstream (commands to devices)."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise TransientError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")
