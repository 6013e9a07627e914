"""The edge's only MQTT adapter: a persistent MQTT 5 session around a paho 2.x client.

The client runs on paho's external-loop interface, driven by the process-wide ``Hub`` (one
thread and an epoll selector for every agent) rather than a ``loop_start`` thread each: paho's
own loop waits with ``select()``, which breaks once a process holds 1024 file descriptors,
as a few hundred simulated devices with their outbox files do.

Callbacks run on the hub thread and only hand work on to ``LinkEvents``. Reconnection uses
exponential backoff (``reconnect_min_s`` doubling up to ``reconnect_max_s``). On every
(re)connect the link drops paho's own copies of unacknowledged messages before paho would
resend them: the agent's on-disk outbox is the single source of truth and republishes them
itself, in seq order and rate-limited, after the birth message.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Final, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.errors import BrokerError, EdgeConfigError
from edge.hub import Hub, shared_hub

logger = logging.getLogger(__name__)

QOS: Final = 1  # every forewarn topic is QoS 1
_CLOSE_TIMEOUT_S: Final = 5.0
_CONNECT_TIMEOUT_S: Final = 5.0  # a TCP/TLS connect blocks the hub thread at most this long


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    keepalive_s: int = 30
    username: str | None = None
    password: str | None = None
    tls: bool = False  # implied by tls_ca / tls_cert; without tls_ca the system CAs are used
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    session_expiry_s: int = 7 * 86400  # how long the broker keeps queued commands while away
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0


class LinkEvents(Protocol):
    """What the link reports; every method is called on the hub thread."""

    def link_up(self) -> None: ...

    def link_down(self) -> None: ...

    def published(self, mid: int, accepted: bool) -> None: ...

    def command(self, payload: bytes) -> None: ...


class MqttLink:
    """One device's connection: client id, last will, birth, command subscription, QoS 1."""

    def __init__(
        self,
        client_id: str,
        settings: BrokerSettings,
        *,
        status_topic: str,
        will_payload: bytes,
        birth_payload: Callable[[], bytes],  # evaluated at each connect
        command_topic: str,
        events: LinkEvents,
        max_inflight: int,
        hub: Hub | None = None,
    ) -> None:
        self._id = client_id
        self._settings = settings
        self._status_topic = status_topic
        self._birth_payload = birth_payload
        self._command_topic = command_topic
        self._events = events
        self._hub = hub or shared_hub()
        self._connected = False
        self._started = False
        self._closing = False
        self._closed = threading.Event()
        self._backoff_s = settings.reconnect_min_s
        self._fd = -1  # the socket the hub watches for us; hub thread only
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5,
        )
        # Handlers guard themselves (see _guard); this is the second line of defence.
        client.suppress_exceptions = True
        client.connect_timeout = _CONNECT_TIMEOUT_S
        client.max_inflight_messages_set(max_inflight)
        client.will_set(status_topic, will_payload, qos=QOS, retain=True)
        if settings.username is not None:
            client.username_pw_set(settings.username, settings.password)
        if settings.tls or settings.tls_ca or settings.tls_cert:
            _configure_tls(client, settings)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_socket_register_write
        client.on_socket_unregister_write = self._on_socket_unregister_write
        self._client = client

    @property
    def connected(self) -> bool:
        return self._connected

    def start(self) -> None:
        """Connect in the background (on the hub thread); returns at once."""
        if self._started:
            return
        self._started = True
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self._settings.session_expiry_s
        try:
            # Only records where to connect; the hub thread connects.
            self._client.connect_async(
                self._settings.host,
                self._settings.port,
                keepalive=self._settings.keepalive_s,
                clean_start=False,
                properties=properties,
            )
        except ValueError as exc:
            raise EdgeConfigError(
                f"bad broker address {self._settings.host}:{self._settings.port}: {exc}"
            ) from exc
        self._hub.call_soon(self._connect)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int | None:
        """Hand one QoS 1 message to a live connection; its mid, or ``None`` if not connected.

        A message refused here is not lost: it stays in the outbox, and paho's own copy is
        dropped at the next connect.
        """
        try:
            info = self._client.publish(topic, payload, qos=QOS, retain=retain)
        except ValueError as exc:
            raise BrokerError(f"cannot publish on {topic!r}: {exc}") from exc
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return None
        return int(info.mid)

    def publish_and_wait(
        self, topic: str, payload: bytes, *, retain: bool, timeout_s: float
    ) -> bool:
        """Publish and wait for the broker's PUBACK; ``False`` if not connected or timed out."""
        if self._hub.on_hub_thread:
            raise BrokerError("publish_and_wait would block the hub thread that receives acks")
        try:
            info = self._client.publish(topic, payload, qos=QOS, retain=retain)
        except ValueError as exc:
            raise BrokerError(f"cannot publish on {topic!r}: {exc}") from exc
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return False
        try:
            info.wait_for_publish(timeout_s)
        except (ValueError, RuntimeError):
            return False
        return bool(info.is_published())

    def republish_birth(self) -> None:
        """Send a fresh birth message (after a setting it reports has changed)."""
        if self._connected:
            self.publish(self._status_topic, self._birth_payload(), retain=True)

    def close(self, *, send_will: bool) -> None:
        """Disconnect for good and wait (a few seconds at most) until the socket is closed.

        ``send_will=True`` ends the session as a crash would: the broker publishes the last
        will (MQTT 5 reason code 0x04 "disconnect with will message").
        """
        if not self._started or self._closing:
            return
        self._closing = True
        self._hub.call_soon(partial(self._shut_down, send_will))
        if not self._hub.on_hub_thread and not self._closed.wait(_CLOSE_TIMEOUT_S):
            logger.warning("%s: the broker connection did not close in time", self._id)
        self._connected = False

    # -- hub thread: connecting ------------------------------------------------------------

    def _connect(self) -> None:
        if self._closing:
            return
        try:
            self._client.reconnect()
        except OSError as exc:  # refused, unreachable, DNS, TLS handshake, timeout
            logger.info(
                "cannot reach broker %s:%s (%s); retrying in %.0f s",
                self._settings.host,
                self._settings.port,
                exc,
                self._backoff_s,
            )
            self._retry_later()

    def _retry_later(self) -> None:
        delay_s = self._backoff_s
        self._backoff_s = min(self._backoff_s * 2, self._settings.reconnect_max_s)
        self._hub.call_later(delay_s, self._connect)

    def _shut_down(self, send_will: bool) -> None:
        if self._client.socket() is None:
            self._closed.set()
            return
        if send_will:
            reason = ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message")
            self._client.disconnect(reasoncode=reason)
        else:
            self._client.disconnect()
        # paho closes the socket once DISCONNECT is written: _socket_closed sets _closed.

    # -- hub thread: socket bookkeeping ------------------------------------------------------

    def on_readable(self) -> None:
        self._client.loop_read()
        # A TLS socket can hold decrypted bytes that the selector does not see.
        for _ in range(64):
            pending = getattr(self._client.socket(), "pending", None)
            if not callable(pending) or pending() <= 0:
                break
            if self._client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break

    def on_writable(self) -> None:
        self._client.loop_write()

    def on_tick(self) -> None:
        self._client.loop_misc()  # keepalive pings, and a dead broker detected by them

    def _on_socket_open(self, client: paho.Client, userdata: object, sock: object) -> None:
        fd = _fileno(sock)
        self._hub.call_soon(partial(self._socket_opened, fd))

    def _socket_opened(self, fd: int) -> None:
        self._fd = fd
        self._hub.watch(fd, self)

    def _on_socket_close(self, client: paho.Client, userdata: object, sock: object) -> None:
        # Runs before paho closes the socket, so the fd cannot have been reused yet.
        self._hub.call_soon(partial(self._socket_closed, _fileno(sock)))

    def _socket_closed(self, fd: int) -> None:
        try:
            self._hub.unwatch(fd, self)
        finally:
            if self._closing:
                self._closed.set()
            elif self._fd == fd:
                self._retry_later()

    def _on_socket_register_write(
        self, client: paho.Client, userdata: object, sock: object
    ) -> None:
        self._hub.call_soon(partial(self._hub.want_write, _fileno(sock), self, True))

    def _on_socket_unregister_write(
        self, client: paho.Client, userdata: object, sock: object
    ) -> None:
        self._hub.call_soon(partial(self._hub.want_write, _fileno(sock), self, False))

    # -- hub thread: MQTT callbacks ----------------------------------------------------------

    def _on_connect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            logger.warning(
                "broker %s:%s refused the connection: %s",
                self._settings.host,
                self._settings.port,
                reason_code,
            )
            return  # the broker closes the socket; _socket_closed retries with backoff
        self._backoff_s = self._settings.reconnect_min_s
        if self._closing:
            return
        with _guard("connect"):
            # paho would now resend its copies of unacknowledged messages, ahead of anything
            # the outbox sends; dropping them keeps the wire in seq order (the outbox resends).
            client.drop_out_messages()
            client.subscribe(self._command_topic, qos=QOS)
            client.publish(self._status_topic, self._birth_payload(), qos=QOS, retain=True)
            self._connected = True
            self._events.link_up()

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._connected = False
        with _guard("disconnect"):
            self._events.link_down()

    def _on_publish(
        self,
        client: paho.Client,
        userdata: object,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with _guard("publish"):
            self._events.published(mid, not reason_code.is_failure)

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        if message.topic == self._command_topic:
            with _guard("message"):
                self._events.command(bytes(message.payload))


def _fileno(sock: object) -> int:
    fileno = getattr(sock, "fileno", None)
    return int(fileno()) if callable(fileno) else -1


@contextmanager
def _guard(callback: str) -> Iterator[None]:
    """Log a failing handler instead of letting it unwind into paho."""
    try:
        yield
    except Exception:
        logger.exception("MQTT %s handler failed", callback)


def _configure_tls(client: paho.Client, settings: BrokerSettings) -> None:
    for name, path in (
        ("TLS CA file", settings.tls_ca),
        ("TLS client certificate", settings.tls_cert),
        ("TLS client key", settings.tls_key),
    ):
        if path is not None and not path.is_file():
            raise EdgeConfigError(f"{name} {path} does not exist or is not a file")
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise EdgeConfigError("a TLS client certificate needs its key, and a key its certificate")
    try:
        client.tls_set(
            ca_certs=None if settings.tls_ca is None else str(settings.tls_ca),
            certfile=None if settings.tls_cert is None else str(settings.tls_cert),
            keyfile=None if settings.tls_key is None else str(settings.tls_key),
            cert_reqs=ssl.CERT_REQUIRED,
        )
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise EdgeConfigError(f"cannot set up TLS for the broker connection: {exc}") from exc
