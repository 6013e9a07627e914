"""The device agent: readings in, seq-numbered MQTT messages out, buffered on disk while offline.

Threads. An agent owns no thread of its own. One hub thread per process (``edge.hub``) drives
every agent's socket, runs the MQTT callbacks and wakes a paused replay when its token bucket
refills; the caller's thread runs ``submit``/``flush``/``pump``.

Ordering. Everything the outbox holds is published by ``pump`` in seq order; one caller at a
time publishes (a try-lock: a caller that finds ``pump`` busy leaves it a note to run again
instead of waiting, so paho's callbacks never block on it). The agent tracks the messages it
handed to paho by mid. On every connect the link drops paho's own copies, and the next pump
starts again from the oldest unacknowledged message: a message may be sent twice (the cloud
deduplicates on seq), never out of order and never lost. A message is deleted from the outbox
only when its PUBACK arrives.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Final

from edge import payloads
from edge.channels import catalog
from edge.commands import Command, Intervals, Verdict, decide, parse_command
from edge.config import AgentConfig
from edge.errors import EdgeError, ReadingError
from edge.events import check_event
from edge.hub import Hub, shared_hub
from edge.mqtt import BrokerSettings, MqttLink
from edge.outbox import Outbox, OutboxStats, wall_clock_ms
from edge.pacing import TokenBucket
from firmware_specs import topic

logger = logging.getLogger(__name__)

MAX_EVENTS_PER_MESSAGE: Final = 200
_REMEMBERED_COMMANDS: Final = 256
_STATUS_TIMEOUT_S: Final = 5.0

__all__ = ["AgentConfig", "AgentStats", "EdgeAgent"]


@dataclass(frozen=True, slots=True)
class AgentStats:
    readings_submitted: int
    readings_acked: int
    messages_enqueued: int
    messages_acked: int
    outbox_depth: int
    dropped: int  # outbox drops (cap, TTL) plus messages the broker refused
    connected: bool
    commands_received: int
    commands_ignored: int  # unreadable commands (no cmd_id): counted, not answered
    events_submitted: int
    values_nulled: int  # out-of-range or non-finite values sent as null
    reboots_requested: int


class EdgeAgent:
    """One device: batches readings and events, keeps them in an outbox, speaks MQTT."""

    def __init__(
        self,
        config: AgentConfig,
        clock_ms: Callable[[], int] = wall_clock_ms,
        *,
        hub: Hub | None = None,
    ) -> None:
        self.config = config
        self._clock_ms = clock_ms
        self._catalog = catalog(config.kind)
        self._topics = {
            suffix: topic(config.kind, config.device_id, suffix)
            for suffix in ("telemetry", "event", "status", "cmd", "cmd/ack")
        }
        self._sample_interval_s = config.sample_interval_s
        self._batch_interval_s = config.batch_interval_s
        self._outbox = Outbox(
            config.outbox_path,
            max_bytes=config.outbox_max_bytes,
            ttl_s=config.outbox_ttl_s,
            durability=config.outbox_durability,
            clock_ms=clock_ms,
        )
        self._final_outbox_stats: OutboxStats | None = None
        # Buffers of unsealed rows and events; sealing happens under this lock so that seqs
        # follow submission order.
        self._buffer_lock = threading.Lock()
        self._rows: list[payloads.Row] = []
        self._events: list[dict[str, object]] = []
        # Publishing state, touched only while holding _pump_lock.
        self._pump_lock = threading.Lock()
        self._pump_wanted = False
        self._inflight: dict[int, tuple[int, int]] = {}  # mid -> (seq, rows)
        self._cursor = -1  # highest seq handed to the link since the last connect
        self._bucket = TokenBucket(config.replay_rate_msgs_per_s, config.replay_burst)
        self._wakeup_pending = False
        # Set by paho's thread, read by pump (plain attribute writes; see link_up/link_down).
        self._resync = False
        self._link_ready = False
        self._acks: deque[tuple[int, bool]] = deque()
        self._hub = hub or shared_hub()
        self._drained = threading.Condition()
        self._stats_lock = threading.Lock()
        self._answered: OrderedDict[str, Verdict] = OrderedDict()
        self._counts = dict.fromkeys(
            (
                "readings_submitted",
                "readings_acked",
                "messages_enqueued",
                "messages_acked",
                "commands_received",
                "commands_ignored",
                "events_submitted",
                "values_nulled",
                "reboots_requested",
                "broker_refused",
            ),
            0,
        )
        self._started = False
        self._stopped = False
        try:
            self._link = MqttLink(
                config.device_id,
                BrokerSettings(
                    host=config.host,
                    port=config.port,
                    keepalive_s=config.keepalive_s,
                    username=config.username,
                    password=config.password,
                    tls=config.tls,
                    tls_ca=config.tls_ca,
                    tls_cert=config.tls_cert,
                    tls_key=config.tls_key,
                    session_expiry_s=config.session_expiry_s,
                    reconnect_min_s=config.reconnect_min_s,
                    reconnect_max_s=config.reconnect_max_s,
                ),
                status_topic=self._topics["status"],
                will_payload=payloads.last_will(config.device_id, config.kind),
                birth_payload=self._birth,
                command_topic=self._topics["cmd"],
                events=self,
                max_inflight=config.inflight_max + 2,  # + birth and status messages
                hub=self._hub,
            )
        except BaseException:
            self._outbox.close()
            raise

    # -- public API ----------------------------------------------------------------------

    @property
    def sample_interval_s(self) -> int:
        """The current sampling interval (a ``set_sample_interval`` command changes it)."""
        return self._sample_interval_s

    def start(self) -> None:
        """Connect in the background; returns at once. Messages wait in the outbox meanwhile."""
        if self._started:
            return
        self._started = True
        self._link.start()

    def submit(self, ts_ms: int, values: Mapping[str, float | None]) -> None:
        """Add one reading row.

        A telemetry message is sealed when it holds ``batch_max_rows`` rows, or when a row
        arrives ``batch_interval_s`` (reading time) or more after the batch's first row.
        """
        if isinstance(ts_ms, bool) or not isinstance(ts_ms, int) or ts_ms < 0:
            raise ReadingError(f"ts_ms must be a non-negative integer (UTC ms), got {ts_ms!r}")
        cleaned, nulled = self._catalog.clean(values)
        with self._buffer_lock:
            self._check_running()
            sealed = 0
            if self._rows and ts_ms <= self._rows[-1][0]:
                raise ReadingError(
                    f"reading times must increase: {ts_ms} after {self._rows[-1][0]}"
                )
            if self._rows and ts_ms - self._rows[0][0] >= self._batch_interval_s * 1000:
                # This row opens the next batch window: the current one is complete.
                sealed += self._seal_rows_locked()
            self._rows.append((ts_ms, cleaned))
            self._count(readings_submitted=1, values_nulled=nulled)
            if len(self._rows) >= self.config.batch_max_rows:
                sealed += self._seal_rows_locked()
        if sealed:
            self.pump()

    def submit_event(self, event: Mapping[str, object]) -> None:
        """Buffer one event; ``flush`` (or 200 buffered events) seals them into a message."""
        checked = check_event(event, self._catalog.event_types)
        with self._buffer_lock:
            self._check_running()
            self._events.append(checked)
            self._count(events_submitted=1)
            sealed = 0
            if len(self._events) >= MAX_EVENTS_PER_MESSAGE:
                sealed = self._seal_events_locked()
        if sealed:
            self.pump()

    def flush(self) -> None:
        """Seal buffered rows and events into the outbox (assigning seqs), then pump."""
        with self._buffer_lock:
            self._check_running()
            self._seal_rows_locked()
            self._seal_events_locked()
        self.pump()

    def pump(self) -> int:
        """Publish from the outbox in seq order within the in-flight window and the rate.

        Returns how many messages this call published. Never blocks on another pump: if one is
        running, it is asked to do another pass and this call returns 0.
        """
        sent = 0
        self._pump_wanted = True
        while self._pump_wanted:
            if not self._pump_lock.acquire(blocking=False):
                return sent
            try:
                self._pump_wanted = False
                if not self._stopped:
                    sent += self._pump_pass()
            finally:
                self._pump_lock.release()
        return sent

    def wait_drained(self, timeout_s: float) -> bool:
        """Wait until the broker acknowledged every message in the outbox."""
        deadline_s = time.monotonic() + timeout_s
        self.pump()
        with self._drained:
            while self._outbox_depth() > 0:
                remaining_s = deadline_s - time.monotonic()
                if remaining_s <= 0:
                    return False
                # Bounded waits: drops by the outbox's cap or TTL do not notify.
                self._drained.wait(min(remaining_s, 0.25))
        return True

    def stop(self, graceful: bool = True) -> None:
        """Stop the agent and close its outbox.

        Graceful: seal what is buffered, wait (at most ``config.drain_timeout_s``) until the
        broker acknowledged it, publish the retained ``offline``/``shutdown`` status, then
        disconnect. Not graceful: drop the connection as a crash would, so that the broker
        publishes the last will; unsealed rows are lost like RAM in a power cut, sealed
        messages stay in the outbox for the next start.
        """
        if self._stopped:
            return
        if graceful:
            try:
                self.flush()
            except EdgeError:
                logger.exception("%s: could not seal the last readings", self.config.device_id)
            if self._started and self._link.connected:
                self.wait_drained(self.config.drain_timeout_s)
                self._link.publish_and_wait(
                    self._topics["status"],
                    payloads.shutdown(self.config.device_id, self.config.kind, self._clock_ms()),
                    retain=True,
                    timeout_s=_STATUS_TIMEOUT_S,
                )
        if self._started:
            self._link.close(send_will=not graceful)
        with self._buffer_lock, self._pump_lock:
            self._stopped = True
            self._final_outbox_stats = self._outbox.stats
            self._outbox.close()

    @property
    def stats(self) -> AgentStats:
        with self._stats_lock:
            counts = dict(self._counts)
        outbox = self._final_outbox_stats
        if outbox is None:
            try:
                outbox = self._outbox.stats
            except EdgeError:  # closed by a concurrent stop(); it left its final figures
                outbox = self._final_outbox_stats
        depth = outbox.depth if outbox is not None else 0
        dropped = outbox.dropped if outbox is not None else 0
        return AgentStats(
            readings_submitted=counts["readings_submitted"],
            readings_acked=counts["readings_acked"],
            messages_enqueued=counts["messages_enqueued"],
            messages_acked=counts["messages_acked"],
            outbox_depth=depth,
            dropped=dropped + counts["broker_refused"],
            connected=self._link.connected and not self._stopped,
            commands_received=counts["commands_received"],
            commands_ignored=counts["commands_ignored"],
            events_submitted=counts["events_submitted"],
            values_nulled=counts["values_nulled"],
            reboots_requested=counts["reboots_requested"],
        )

    # -- LinkEvents (the hub thread): record, then pump ------------------------------------

    def link_up(self) -> None:
        self._resync = True
        self.pump()

    def link_down(self) -> None:
        self._link_ready = False

    def published(self, mid: int, accepted: bool) -> None:
        self._acks.append((mid, accepted))
        self.pump()

    def command(self, payload: bytes) -> None:
        try:
            self._answer(payload)
        except EdgeError:
            logger.exception("%s: could not answer a command", self.config.device_id)
        self.pump()

    # -- sealing (caller holds _buffer_lock) -----------------------------------------------

    def _seal_rows_locked(self) -> int:
        """Seal the buffered rows; returns how many messages that made."""
        if not self._rows:
            return 0
        device_id, kind, sent_ms = self.config.device_id, self.config.kind, self._clock_ms()

        def build(seq: int, rows: Sequence[payloads.Row]) -> bytes:
            return payloads.telemetry(device_id, kind, seq, sent_ms, rows)

        chunks = payloads.split_to_fit(self._rows, build)
        for chunk in chunks:
            self._outbox.enqueue("telemetry", partial(build, rows=chunk), rows=len(chunk))
            del self._rows[: len(chunk)]  # only once it is safely in the outbox
            self._count(messages_enqueued=1)
        return len(chunks)

    def _seal_events_locked(self) -> int:
        if not self._events:
            return 0
        device_id, kind, sent_ms = self.config.device_id, self.config.kind, self._clock_ms()
        self._events.sort(key=_event_time)

        def build(seq: int, items: Sequence[dict[str, object]]) -> bytes:
            return payloads.events(device_id, kind, seq, sent_ms, items)

        chunks = payloads.split_to_fit(self._events, build)
        for chunk in chunks:
            self._outbox.enqueue("event", partial(build, items=chunk))
            del self._events[: len(chunk)]
            self._count(messages_enqueued=1)
        return len(chunks)

    # -- publishing (caller holds _pump_lock) ------------------------------------------

    def _pump_pass(self) -> int:
        self._apply_acks()
        if self._resync:
            # A new connection: paho's copies were dropped, start again from the oldest.
            self._resync = False
            self._inflight.clear()
            self._cursor = -1
            self._link_ready = True
        if not self._link_ready:
            return 0
        room = self.config.inflight_max - len(self._inflight)
        unsent = self._outbox.last_seq - self._cursor  # an upper bound: acked seqs are gone
        if room <= 0 or unsent <= 0:
            return 0  # the next PUBACK or enqueue pumps again
        granted = self._bucket.take(min(room, unsent))
        last_seq = self._outbox.last_seq  # read before peek: later messages have higher seqs
        messages = self._outbox.peek(granted, after_seq=self._cursor) if granted else []
        sent = 0
        for message in messages:
            if not self._link_ready:
                break
            mid = self._link.publish(self._topics[message.suffix], message.payload)
            if mid is None:
                # The connection is gone; paho's copy is dropped at the next connect.
                self._link_ready = False
                break
            self._inflight[mid] = (message.seq, message.rows)
            self._cursor = message.seq
            sent += 1
        if granted and sent == len(messages) < granted:
            # Everything up to last_seq was sent or is gone (dropped by the outbox's cap).
            self._cursor = max(self._cursor, last_seq)
        self._bucket.give_back(granted - sent)
        if (
            self._link_ready
            and self._outbox.last_seq > self._cursor
            and len(self._inflight) < self.config.inflight_max
        ):
            # More to send and room for it: only the token bucket holds it back.
            self._wake_later(self._bucket.seconds_until_token())
        return sent

    def _apply_acks(self) -> None:
        seqs: list[int] = []
        rows = refused = 0
        while self._acks:
            mid, accepted = self._acks.popleft()
            entry = self._inflight.pop(mid, None)
            if entry is None:
                continue  # a status message, or a copy sent before the last reconnect
            seqs.append(entry[0])
            rows += entry[1]
            if not accepted:
                refused += 1
                logger.warning(
                    "%s: the broker refused message seq %d; dropped",
                    self.config.device_id,
                    entry[0],
                )
        if not seqs:
            return
        self._outbox.ack_many(seqs)
        self._count(
            messages_acked=len(seqs) - refused,
            readings_acked=rows,
            broker_refused=refused,
        )
        with self._drained:
            self._drained.notify_all()

    def _wake_later(self, delay_s: float) -> None:
        if self._wakeup_pending:
            return
        self._wakeup_pending = True
        self._hub.call_later(delay_s, self._wake)

    def _wake(self) -> None:
        self._wakeup_pending = False
        if not self._stopped:
            self.pump()

    # -- commands ------------------------------------------------------------------------

    def _answer(self, payload: bytes) -> None:
        self._count(commands_received=1)
        parsed = parse_command(payload)
        if parsed is None:
            self._count(commands_ignored=1)
            logger.warning("%s: ignored a command without a readable cmd_id", self.config.device_id)
            return
        previous = self._answered.get(parsed.cmd_id)
        if previous is not None:
            verdict = previous  # QoS 1 redelivery: act once, repeat the first answer
        else:
            verdict = parsed if isinstance(parsed, Verdict) else self._execute(parsed)
            self._answered[verdict.cmd_id] = verdict
            while len(self._answered) > _REMEMBERED_COMMANDS:
                self._answered.popitem(last=False)
        device_id, kind, ts_ms = self.config.device_id, self.config.kind, self._clock_ms()
        if self._stopped:
            return
        self._outbox.enqueue(
            "cmd/ack",
            lambda seq: payloads.command_ack(
                device_id, kind, seq, verdict.cmd_id, ts_ms, verdict.status, verdict.detail
            ),
        )
        self._count(messages_enqueued=1)

    def _execute(self, command: Command) -> Verdict:
        current = Intervals(self._sample_interval_s, self._batch_interval_s)
        verdict, changed = decide(command, self._clock_ms(), self._catalog, current)
        if verdict.status == "ok" and command.name == "reboot":
            self._count(reboots_requested=1)
        if changed is not None:
            self._sample_interval_s = changed.sample_interval_s
            self._batch_interval_s = changed.batch_interval_s
            self._link.republish_birth()
        return verdict

    # -- helpers ---------------------------------------------------------------------------

    def _birth(self) -> bytes:
        config = self.config
        return payloads.birth(
            config.device_id,
            config.kind,
            self._clock_ms(),
            fw=config.fw,
            model=config.model or config.kind,
            sample_interval_s=self._sample_interval_s,
            batch_interval_s=self._batch_interval_s,
            attributes=config.attributes,
        )

    def _outbox_depth(self) -> int:
        if self._final_outbox_stats is not None:
            return self._final_outbox_stats.depth
        return self._outbox.depth

    def _check_running(self) -> None:
        if self._stopped:
            raise ReadingError(f"agent {self.config.device_id} is stopped")

    def _count(self, **increments: int) -> None:
        with self._stats_lock:
            for name, value in increments.items():
                self._counts[name] += value


def _event_time(event: Mapping[str, object]) -> int:
    ts_ms = event["ts_ms"]
    return ts_ms if isinstance(ts_ms, int) else 0  # check_event made sure it is an int
