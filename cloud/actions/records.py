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
    region: str | None = None
    skill: str = ""
    assignee_id: str | None = None
    acknowledged_ms: int | None = None
    booked_start_ms: int | None = None
    booked_end_ms: int | None = None
    escalation_level: int = 0  # 0 nothing yet, 1 reminder sent, 2 escalated
    sla_breached_ms: int | None = None  # the due time that was missed
    closure_code: str | None = None  # fault_confirmed | no_fault_found | customer_declined
    closed_ms: int | None = None

    @property
    def is_open(self) -> bool:
        return self.status in ("new", "assigned", "en_route", "on_site")


@dataclass(frozen=True, slots=True)
class TickResult:
    """What one ``ActionService.tick`` found overdue and recorded (each at most once)."""

    reminders: int = 0
    escalations: int = 0
    sla_breaches: int = 0


@dataclass(frozen=True, slots=True)
class Technician:
    id: str
    name: str
    region: str
    skills: tuple[str, ...]
    tz: str
    work_days: tuple[int, ...]  # ISO weekdays, 1 = Monday
    work_start_min: int  # minutes after local midnight
    work_end_min: int
    active: bool
    open_tickets: int = 0  # assigned to them and not closed


@dataclass(frozen=True, slots=True)
class Webhook:
    """A subscription; the signing secret is shown once, at creation, and never again."""

    id: int
    url: str
    events: tuple[str, ...]
    description: str
    active: bool
    created_ms: int
    secret: str | None = None  # set only in what ``add_webhook`` returns


@dataclass(frozen=True, slots=True)
class RestockOrder:
    id: int
    ticket_id: int
    route: str
    device_id: str
    visit_day: str  # ISO date (UTC) by which the machine must be visited
    stockout_ms: int | None
    stockout_lo_ms: int | None
    score: float
    lines: tuple[tuple[str, int], ...]  # (slot, quantity to bring), most urgent slot first
    status: str  # open | delivered | cancelled

    @property
    def items(self) -> int:
        return sum(qty for _slot, qty in self.lines)


@dataclass(frozen=True, slots=True)
class PickList:
    """One route's pre-kit for one day: machines in visiting order, highest stock-out risk first.

    Orders due on earlier days and still open are carried over onto the day. ``deferred``
    counts the due orders left for a later day because the route had fewer stops to give.
    """

    route: str
    day: str
    stops: tuple[RestockOrder, ...]
    deferred: int = 0

    @property
    def items(self) -> int:
        return sum(stop.items for stop in self.stops)


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
