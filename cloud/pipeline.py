"""One pass of the cloud pipeline: decode → dedup → store → core → decisions → actions.

``Pipeline.process`` takes a group of raw MQTT messages and returns only when everything they
carry is stored and every decision they cause is committed to the actions outbox, so the caller
may acknowledge the group to the broker afterwards. If a store or the database fails, the error
propagates, the group is not acknowledged, and the broker delivers it again later.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from cloud.actions.service import ActionService
from cloud.batch import TelemetryBatch
from cloud.core import fleet
from cloud.deadletters import RecordStore
from cloud.decision_types import Decision
from cloud.decisions import STALE_AFTER_MS, PolicyState, decide
from cloud.dedup import SeqDeduper
from cloud.devices import DeviceDirectory
from cloud.snapshot import Snapshot
from cloud.store.ports import TelemetryWriter
from cloud.throttle import Admission, DeviceThrottle
from cloud.wire import (
    CommandAck,
    EventBatch,
    RawMessage,
    Reject,
    Status,
    Telemetry,
    decode_many,
    to_batches,
    topic_identity,
)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PipelineCounters:
    """Running totals since start; read by the API and the demo summary."""

    messages: int = 0
    telemetry_messages: int = 0
    readings_received: int = 0
    readings_stored: int = 0
    readings_rejected: int = 0
    duplicate_messages: int = 0
    late_rows: int = 0
    events: int = 0
    statuses: int = 0
    command_acks: int = 0
    decisions: int = 0
    rejects_by_reason: Counter[str] = field(default_factory=Counter)

    def snapshot(self) -> dict[str, object]:
        out: dict[str, object] = {
            k: getattr(self, k) for k in self.__slots__ if k != "rejects_by_reason"
        }
        out["rejected_messages"] = sum(self.rejects_by_reason.values())
        out["rejects_by_reason"] = dict(self.rejects_by_reason)
        return out


class Pipeline:
    """Owns the fleet state; used by one ingest worker thread at a time."""

    def __init__(
        self,
        writers: Sequence[TelemetryWriter],
        records: RecordStore,
        actions: ActionService,
        directory: DeviceDirectory,
        on_decisions: Callable[[list[Decision]], None] | None = None,
        throttle: DeviceThrottle | None = None,
    ) -> None:
        self.writers = list(writers)
        self.records = records
        self.actions = actions
        self.directory = directory
        self.state = fleet.FleetState.empty()
        self.policy = PolicyState()
        self.dedup = SeqDeduper()
        self.counters = PipelineCounters()
        self._on_decisions = on_decisions
        self.throttle = throttle
        self._lock = threading.Lock()

    def process(self, messages: Sequence[RawMessage]) -> list[Decision]:
        with self._lock:
            return self._process(messages)

    def checkpoint(self, high_water: Callable[[], int], taken_ms: int) -> Snapshot:
        """The state between two groups, with the store position it includes (see snapshot)."""
        with self._lock:
            return Snapshot(
                self.state, self.policy, tuple(self.directory.all()), high_water(), taken_ms
            )

    def restore(self, snapshot: Snapshot) -> None:
        with self._lock:
            self.state, self.policy = snapshot.state, snapshot.policy
            self.directory.restore(snapshot.devices)

    def replay(self, batches: Iterable[TelemetryBatch], now_ms: int) -> int:
        """Fold stored telemetry into the state again after a restore; return the rows replayed.

        Decisions are applied as in live ingest: the actions database keeps one ticket per
        decision id, so a decision that was already acted on before a crash is not acted on
        twice, and one that was lost with the crash is acted on now.
        """
        rows = 0
        with self._lock:
            bars = self.actions.device_bars()
            for batch in batches:
                state, conditions = fleet.update(self.state, batch)
                stale = self._stale_before(state, batch, now_ms)
                policy, out = decide(
                    self.policy, batch.kind, state.device_ids(batch.kind), conditions, stale, bars
                )
                if out:
                    self.actions.apply(out)
                self.state, self.policy = state, policy
                self.counters.decisions += len(out)
                if out and self._on_decisions is not None:
                    self._on_decisions(out)
                rows += batch.n_rows
                self._saw_batch(batch)
        return rows

    def _saw_batch(self, batch: TelemetryBatch) -> None:
        """Tell the directory about a replayed batch: first and last time and rows per device."""
        if batch.n_rows == 0:
            return
        order = np.argsort(batch.row_device, kind="stable")
        device, ts = batch.row_device[order], batch.ts_ms[order]
        starts = np.flatnonzero(np.r_[True, device[1:] != device[:-1]])
        firsts = np.minimum.reduceat(ts, starts)
        lasts = np.maximum.reduceat(ts, starts)
        counts = np.diff(np.r_[starts, device.shape[0]])
        self.directory.saw_data_many(
            (batch.kind, batch.device_ids[d], first, last, n)
            for d, first, last, n in zip(
                device[starts].tolist(), firsts.tolist(), lasts.tolist(), counts.tolist(),
                strict=True,
            )
        )  # fmt: skip

    def _drop_throttled(self, admission: Admission) -> None:
        """Keep a sample of a flood as dead letters, count the rest, flag the devices."""
        rate = self.throttle.rate_per_ms * 1000 if self.throttle is not None else 0.0
        samples = []
        for m in admission.samples:
            device_id, kind = topic_identity(m.topic)
            detail = f"{device_id} sent faster than {rate:g} messages/s; dropped"
            samples.append(
                Reject(m.topic, m.payload, m.received_ms, "throttled", detail, device_id, kind, 0)
            )
        self.records.add_rejects(samples)
        now_ms = max((m.received_ms for m in admission.samples), default=0)
        for device_id, count in admission.throttled.items():
            kind = next((s.kind for s in samples if s.device_id == device_id), None)
            info = self.directory.get(device_id)
            kind = kind or (info.kind if info is not None else "unknown")
            self.directory.saw_throttled(kind, device_id, count, now_ms)
            self.counters.rejects_by_reason["throttled"] += count

    def _stale_before(
        self, state: fleet.FleetState, batch: TelemetryBatch, now_ms: int
    ) -> dict[int, int]:
        """Per device index of the batch's devices: data older than this is back-filled.

        A device's present is the newest time it has told us (data, or its birth message on
        reconnecting), so the check holds however fast a simulation's clock runs; a device
        clock ahead of ours cannot push it past our own present.
        """
        position = getattr(state, batch.kind).registry.pos
        seen = self.directory.last_seen(batch.device_ids)
        return {
            position[d]: min(ts, now_ms) - STALE_AFTER_MS for d, ts in seen.items() if d in position
        }

    def dead_letter(self, message: RawMessage, reason: str, detail: str) -> None:
        """Keep a message that could not be processed, with why, and count it."""
        device_id, kind = topic_identity(message.topic)
        with self._lock:
            self.records.add_rejects(
                [Reject(message.topic, message.payload, message.received_ms, reason, detail[:2000],
                        device_id, kind, 0)]
            )  # fmt: skip
            self.counters.messages += 1
            self.counters.rejects_by_reason[reason] += 1

    def _process(self, messages: Sequence[RawMessage]) -> list[Decision]:
        received = len(messages)
        if self.throttle is not None:
            admission = self.throttle.admit(messages)
            if admission.throttled:
                self._drop_throttled(admission)
            messages = admission.admitted
        decoded, rejects = decode_many(messages)
        now_ms = max((m.received_ms for m in messages), default=0)
        telemetry: list[Telemetry] = []
        events: list[EventBatch] = []
        statuses: list[Status] = []
        accepted: list[tuple[str, int]] = []
        dup = 0
        for item in decoded:
            if isinstance(item, Status):
                statuses.append(item)
                continue
            if self.dedup.seen(item.device_id, item.seq):
                dup += 1
                continue
            accepted.append((item.device_id, item.seq))
            if isinstance(item, Telemetry):
                telemetry.append(item)
            elif isinstance(item, EventBatch):
                events.append(item)
            elif isinstance(item, CommandAck):
                self.counters.command_acks += 1
        try:
            decisions = self._apply(telemetry, events, statuses, rejects, now_ms)
        except BaseException:
            for device_id, seq in accepted:  # let the redelivery through next time
                self.dedup.forget(device_id, seq)
            raise
        c = self.counters
        c.messages += received
        c.duplicate_messages += dup
        c.telemetry_messages += len(telemetry)
        c.readings_received += sum(len(t.ts_ms) for t in telemetry)
        c.readings_rejected += sum(r.rows for r in rejects)
        c.events += sum(len(e.events) for e in events)
        c.statuses += len(statuses)
        c.rejects_by_reason.update(r.reason for r in rejects)
        c.decisions += len(decisions)
        return decisions

    def _apply(
        self,
        telemetry: list[Telemetry],
        events: list[EventBatch],
        statuses: list[Status],
        rejects: list[Reject],
        now_ms: int,
    ) -> list[Decision]:
        state = self.state
        for s in statuses:  # a birth message configures the device before its data is scored
            self.directory.saw_status(s, now_ms)
            if s.state == "online" and s.attributes:
                state = fleet.configure(state, s.kind, s.device_id, s.attributes)
        batches = to_batches(telemetry)
        for batch in batches.values():
            new_rows = 0
            for i, writer in enumerate(self.writers):
                written = writer.write(batch)
                if i == 0:
                    new_rows = written
            # Stored is stored, even if a later step fails and the group comes back: its
            # redelivery writes nothing new, so count the rows now or never.
            self.counters.readings_stored += new_rows
        self.records.add_rejects(rejects)
        self.records.add_events(events)
        decisions: list[Decision] = []
        policy = self.policy
        # Devices whose tickets were repeatedly closed as "no fault found" need more evidence.
        bars = self.actions.device_bars() if batches else {}
        for kind, batch in batches.items():
            state, conditions = fleet.update(state, batch)
            stale = self._stale_before(state, batch, now_ms)
            policy, out = decide(policy, kind, state.device_ids(kind), conditions, stale, bars)
            decisions.extend(out)
        if decisions:
            self.actions.apply(decisions)
        # Commit the new state only after every effect of this group is durable.
        self.state, self.policy = state, policy
        # One entry per message (a device's several messages fold in the directory's lock).
        self.directory.saw_data_many(
            (t.kind, t.device_id, t.ts_ms[0], t.ts_ms[-1], len(t.ts_ms)) for t in telemetry
        )
        if decisions and self._on_decisions is not None:
            self._on_decisions(decisions)
        return decisions
