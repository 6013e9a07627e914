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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cloud.actions.service import ActionService
from cloud.core import fleet
from cloud.deadletters import RecordStore
from cloud.decision_types import Decision
from cloud.decisions import PolicyState, decide
from cloud.dedup import SeqDeduper
from cloud.devices import DeviceDirectory
from cloud.store.ports import TelemetryWriter
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
        self._lock = threading.Lock()

    def process(self, messages: Sequence[RawMessage]) -> list[Decision]:
        with self._lock:
            return self._process(messages)

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
        c.messages += len(messages)
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
        stored = 0
        for batch in batches.values():
            new_rows = 0
            for i, writer in enumerate(self.writers):
                written = writer.write(batch)
                if i == 0:
                    new_rows = written
            stored += new_rows
        self.records.add_rejects(rejects)
        self.records.add_events(events)
        decisions: list[Decision] = []
        policy = self.policy
        for kind, batch in batches.items():
            state, conditions = fleet.update(state, batch)
            policy, out = decide(policy, kind, state.device_ids(kind), conditions)
            decisions.extend(out)
        if decisions:
            self.actions.apply(decisions)
        # Commit the new state only after every effect of this group is durable.
        self.state, self.policy = state, policy
        self.counters.readings_stored += stored
        seen: dict[str, tuple[str, int, int, int]] = {}
        for t in telemetry:
            kind, first, last, rows = seen.get(t.device_id, (t.kind, t.ts_ms[0], t.ts_ms[-1], 0))
            seen[t.device_id] = (
                kind,
                min(first, t.ts_ms[0]),
                max(last, t.ts_ms[-1]),
                rows + len(t.ts_ms),
            )
        for device_id, (kind, first, last, rows) in seen.items():
            self.directory.saw_data(kind, device_id, first, last, rows)
        if decisions and self._on_decisions is not None:
            self._on_decisions(decisions)
        return decisions
