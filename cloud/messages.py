"""The typed messages of the device contract v1, as the decoder hands them on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One MQTT message as the broker delivered it."""

    topic: str
    payload: bytes
    received_ms: int


@dataclass(frozen=True, slots=True)
class Telemetry:
    """A telemetry batch of one device: ``values[channel][row]`` was read at ``ts_ms[row]``."""

    device_id: str
    kind: str
    seq: int
    sent_ms: int
    ts_ms: list[int]
    values: dict[str, list[float | None]]
    # The decoder's float copy of ``values`` (channels × rows, NaN for null), kept so that
    # batching does not convert the same numbers twice; None when built by hand.
    table: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class DoorEvent:
    type: ClassVar[str] = "door"
    ts_ms: int
    open: bool


@dataclass(frozen=True, slots=True)
class PowerEvent:
    type: ClassVar[str] = "power"
    ts_ms: int
    on: bool


@dataclass(frozen=True, slots=True)
class VendEvent:
    type: ClassVar[str] = "vend"
    ts_ms: int
    slot: str
    qty: int
    price_cents: int
    ok: bool


@dataclass(frozen=True, slots=True)
class RestockEvent:
    type: ClassVar[str] = "restock"
    ts_ms: int
    slot: str
    level: int


@dataclass(frozen=True, slots=True)
class FaultEvent:
    type: ClassVar[str] = "fault"
    ts_ms: int
    code: str
    severity: str
    detail: str | None


Event: TypeAlias = DoorEvent | PowerEvent | VendEvent | RestockEvent | FaultEvent


@dataclass(frozen=True, slots=True)
class EventBatch:
    device_id: str
    kind: str
    seq: int
    sent_ms: int
    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class Status:
    """Retained presence: birth (online), graceful stop or last will (offline)."""

    device_id: str
    kind: str
    state: str
    ts_ms: int | None
    reason: str | None
    fw: str | None
    model: str | None
    sample_interval_s: int | None
    batch_interval_s: int | None
    attributes: dict[str, object]


@dataclass(frozen=True, slots=True)
class CommandAck:
    device_id: str
    kind: str
    seq: int
    cmd_id: str
    ts_ms: int
    status: str
    detail: str | None


Decoded: TypeAlias = Telemetry | EventBatch | Status | CommandAck


@dataclass(frozen=True, slots=True)
class Reject:
    """A message that broke the contract; ``rows`` counts its readings when they were countable."""

    topic: str
    payload: bytes
    received_ms: int
    reason: str
    detail: str
    device_id: str | None
    kind: str | None
    rows: int
