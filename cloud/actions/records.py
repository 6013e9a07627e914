"""Values the actions stage returns: results of a call and read-only views of stored rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What one ``apply`` call changed. ``unchanged`` counts replays and stale evidence."""

    tickets_opened: int = 0
    tickets_updated: int = 0
    emails_queued: int = 0
    unchanged: int = 0


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What one ``deliver_pending`` call did: ``failed`` items will be retried later."""

    sent: int = 0
    failed: int = 0
    parked: int = 0


@dataclass(frozen=True, slots=True)
class TicketEvent:
    ts_ms: int
    actor: str
    kind: str  # opened | evidence | status
    detail: str


@dataclass(frozen=True, slots=True)
class Ticket:
    id: int
    reference: str  # what a customer and a technician quote, e.g. "FW-000042"
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
    events: tuple[TicketEvent, ...] = ()  # filled by ``ActionService.ticket`` only


@dataclass(frozen=True, slots=True)
class Email:
    id: int
    message_id: str
    correlation_id: str
    customer_id: str | None
    to_addr: str
    subject: str | None
    kind: str
    status: str  # queued | sent | parked
    created_ms: int
    sent_ms: int | None


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    idempotency_key: str
    kind: str
    state: str  # pending | sending | sent | parked
    attempts: int
    next_attempt_ms: int
    last_error: str | None
    created_ms: int
    sent_ms: int | None
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Counts:
    """Row counts by status, for the API and the dashboard."""

    tickets: Mapping[str, int]
    emails: Mapping[str, int]
    outbox: Mapping[str, int]


def ticket_reference(ticket_id: int) -> str:
    """The human reference of a ticket.

    >>> ticket_reference(42)
    'FW-000042'
    """
    return f"FW-{ticket_id:06d}"
