"""What the API returns and accepts (``*Public`` out, ``*Create``/``*Request`` in)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from cloud.accounts import ApiToken, Role, User
from cloud.decision_types import Decision


def iso(ts_ms: int | None) -> str | None:
    if ts_ms is None:
        return None
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat(timespec="seconds")


class _FromRecord(BaseModel):
    """Built from a frozen record; fields the record gains later are ignored until listed."""

    model_config = ConfigDict(extra="ignore")

    @classmethod
    def of(cls, record: Any) -> Self:
        return cls.model_validate(dataclasses.asdict(record))


class Health(BaseModel):
    status: str
    broker_connected: bool


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, str] = Field(description="'ok' or what is wrong, per dependency")


class OwnerPublic(BaseModel):
    customer_id: str | None
    customer_name: str | None
    nickname: str | None
    region: str | None


class DevicePublic(BaseModel):
    device_id: str
    kind: str
    online: bool
    health: str = Field(description="ok | warning | critical | offline (worst open prediction)")
    presence: str
    presence_reason: str | None
    first_seen_ms: int
    last_seen_ms: int
    last_seen: str | None
    readings: int
    fw: str | None
    model: str | None
    owner: OwnerPublic | None
    attributes: dict[str, Any]


class PredictionPublic(BaseModel):
    decision_id: str = Field(description="stable id of the root cause; the tickets' correlation id")
    device_id: str
    product_kind: str
    fault: str
    action: str
    severity: str
    score: float = Field(description="0..1, high = sure")
    ts_ms: int = Field(description="data time of the evidence")
    opened_ms: int
    eta_ms: int | None = Field(description="predicted failure / stock-out time")
    eta_lo_ms: int | None = Field(description="80 % interval, early bound")
    eta_hi_ms: int | None = Field(description="80 % interval, late bound")
    eta: str | None
    summary: str
    contributions: dict[str, float] = Field(description="share of each signal in the score")
    details: dict[str, str]

    @classmethod
    def of(cls, d: Decision) -> PredictionPublic:
        return cls(
            decision_id=d.decision_id, device_id=d.device_id, product_kind=d.product_kind,
            fault=d.fault, action=str(d.action), severity=str(d.severity), score=d.score,
            ts_ms=d.ts_ms, opened_ms=d.opened_ms, eta_ms=d.eta_ms, eta_lo_ms=d.eta_lo_ms,
            eta_hi_ms=d.eta_hi_ms, eta=iso(d.eta_ms), summary=d.summary,
            contributions=dict(d.contributions), details=dict(d.details),
        )  # fmt: skip


class DeviceDetailPublic(DevicePublic):
    channels: list[str]
    predictions: list[PredictionPublic]
    events: list[dict[str, Any]]


class SeriesPublic(BaseModel):
    device_id: str
    channel: str
    bucket_ms: int | None = Field(description="bucket width; null when readings are raw")
    ts_ms: list[int] = Field(description="reading time, or bucket start")
    mean: list[float | None]
    min: list[float | None]
    max: list[float | None]


class TicketEventPublic(BaseModel):
    ts_ms: int
    actor: str
    kind: str
    detail: dict[str, Any]


class TicketPublic(_FromRecord):
    id: int
    reference: str
    correlation_id: str
    device_id: str
    product_kind: str
    fault: str
    action: str
    status: str
    severity: str
    priority: str
    due_ms: int
    score: float
    summary: str
    eta_ms: int | None
    eta_lo_ms: int | None
    eta_hi_ms: int | None
    evidence_count: int
    opened_ms: int
    updated_ms: int
    region: str | None = None
    assignee_id: str | None = None
    acknowledged_ms: int | None = None
    booked_start_ms: int | None = None
    booked_end_ms: int | None = None
    sla_breached_ms: int | None = None
    closure_code: str | None = None
    closed_ms: int | None = None


class TicketDetailPublic(TicketPublic):
    events: list[TicketEventPublic]

    @classmethod
    def of(cls, record: Any) -> Self:
        out = dataclasses.asdict(record)
        out["events"] = [{**e, "detail": _json_object(e["detail"])} for e in out.get("events", ())]
        return cls.model_validate(out)


class TicketPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[TicketPublic]


class AssignRequest(BaseModel):
    technician_id: str = Field(min_length=1, max_length=64)
    booked_start_ms: int | None = Field(default=None, ge=0)
    booked_end_ms: int | None = Field(default=None, ge=0)


class TransitionRequest(BaseModel):
    status: str = Field(min_length=1, max_length=24, description="en_route | on_site | ...")
    note: str | None = Field(default=None, max_length=2000)


class ResolveRequest(BaseModel):
    closure_code: str = Field(
        min_length=1, max_length=24, description="fault_confirmed | no_fault_found | ..."
    )
    note: str | None = Field(default=None, max_length=2000)


class EmailPublic(_FromRecord):
    id: int
    message_id: str
    correlation_id: str
    customer_id: str | None
    to_addr: str
    subject: str | None
    kind: str
    status: str
    created_ms: int
    sent_ms: int | None


class OutboxItemPublic(_FromRecord):
    id: int
    idempotency_key: str
    kind: str
    state: str
    attempts: int
    next_attempt_ms: int
    last_error: str | None
    created_ms: int
    sent_ms: int | None


class DeadLetterPublic(_FromRecord):
    id: int
    received_ms: int
    topic: str
    reason: str
    detail: str
    device_id: str | None
    product_kind: str | None
    rows: int
    size_bytes: int
    payload_preview: str


class UserPublic(BaseModel):
    id: int
    username: str
    role: Role
    customer_id: str | None
    active: bool
    created_ms: int

    @classmethod
    def of(cls, u: User) -> UserPublic:
        return cls(**dataclasses.asdict(u))


class UserCreate(BaseModel):
    username: str = Field(min_length=2, max_length=64)
    password: str = Field(min_length=10, max_length=1024)
    role: Role
    customer_id: str | None = Field(default=None, max_length=64)


class TokenPublic(BaseModel):
    id: int
    name: str
    hint: str = Field(description="first characters of the token, to recognise it")
    role: Role
    customer_id: str | None
    created_by: str
    created_ms: int
    last_used_ms: int | None
    revoked_ms: int | None

    @classmethod
    def of(cls, t: ApiToken) -> TokenPublic:
        return cls(**dataclasses.asdict(t))


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    role: Role
    customer_id: str | None = Field(default=None, max_length=64)


class TokenCreated(TokenPublic):
    token: str = Field(description="the secret: shown this once, store it now")


class MePublic(BaseModel):
    kind: str
    name: str
    role: Role
    customer_id: str | None


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {"text": text}
    return value if isinstance(value, dict) else {"value": value}
