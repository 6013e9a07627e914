"""Ticket lifecycle: legal status changes, events with time and actor, escalation, the SLA clock.

::

    new ──► assigned ──► en_route ──► on_site ──► resolved
     │        ▲  │ ▲        │            │
     │        └──┘ └────────┘            └──────► closed_incomplete
     └──────────────► cancelled  (from new, assigned, en_route)

``assigned → new`` takes a ticket back from a technician, ``assigned → assigned`` hands it to
another one, ``en_route → assigned`` calls a trip off. Tickets nobody visits for (advice for the
customer, restocks for a route driver) may also go ``new → resolved``. Every change is a
``TicketEventRow`` with its time and actor, and every event is offered to the webhooks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cloud.actions.db import DeviceFeedbackRow, InsertFn, TicketEventRow, TicketRow
from cloud.actions.priority import HOUR_MS, Priority
from cloud.actions.records import TickResult, ticket_reference
from cloud.actions.webhooks import queue_event
from cloud.errors import RejectedInput

OPEN_STATUSES: Final = ("new", "assigned", "en_route", "on_site")
CLOSED_STATUSES: Final = ("resolved", "closed_incomplete", "cancelled")
TRANSITIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "new": ("assigned", "cancelled"),
    "assigned": ("assigned", "new", "en_route", "closed_incomplete", "cancelled"),
    "en_route": ("on_site", "assigned", "closed_incomplete", "cancelled"),
    "on_site": ("resolved", "closed_incomplete"),
}
NO_VISIT_TRANSITIONS: Final[Mapping[str, tuple[str, ...]]] = {"new": ("resolved", "cancelled")}
CLOSURE_CODES: Final = ("fault_confirmed", "no_fault_found", "customer_declined")
# Which closure codes a closing status takes, and whether one is required.
_CLOSING: Final[Mapping[str, tuple[tuple[str, ...], bool]]] = {
    "resolved": (("fault_confirmed", "no_fault_found"), True),
    "closed_incomplete": (CLOSURE_CODES, True),
    "cancelled": (CLOSURE_CODES, False),
}
# How long a dispatch ticket may wait for someone to acknowledge it before a reminder; after
# twice as long it is escalated.
ACK_MS: Final = {
    Priority.P1: HOUR_MS // 2,
    Priority.P2: 2 * HOUR_MS,
    Priority.P3: 8 * HOUR_MS,
    Priority.P4: 24 * HOUR_MS,
}
ESCALATION_ACTOR: Final = "escalation"
# Feedback of closure codes: consecutive no-fault-found closures raise a device's bar.
NFF_BAR_STEP: Final = 0.5
MAX_BAR: Final = 3.0


class IllegalTransition(RejectedInput):
    """A status change the lifecycle does not allow (e.g. ``new → resolved`` for a visit)."""

    def __init__(self, reference: str, current: str, wanted: str, allowed: tuple[str, ...]):
        choices = ", ".join(allowed) if allowed else "none: the ticket is closed"
        super().__init__(f"ticket {reference} is {current}: cannot go to {wanted} ({choices})")
        self.current = current
        self.wanted = wanted


def allowed_next(action: str, status: str) -> tuple[str, ...]:
    """Statuses a ticket may move to from ``status``.

    >>> allowed_next("dispatch", "on_site")
    ('resolved', 'closed_incomplete')
    >>> allowed_next("advice", "new")
    ('assigned', 'cancelled', 'resolved')
    >>> allowed_next("dispatch", "resolved")
    ()
    """
    out = TRANSITIONS.get(status, ())
    if action != "dispatch":
        out = out + tuple(s for s in NO_VISIT_TRANSITIONS.get(status, ()) if s not in out)
    return out


def check_closure(row: TicketRow, to: str, closure_code: str | None) -> None:
    if to not in _CLOSING:
        if closure_code is not None:
            raise RejectedInput(f"a closure code belongs to {', '.join(_CLOSING)}, not to {to}")
        return
    codes, required = _CLOSING[to]
    required = required and (row.action == "dispatch" or to != "resolved")
    if closure_code is None:
        if required:
            raise RejectedInput(f"closing as {to} needs a closure code: {', '.join(codes)}")
        return
    if closure_code not in codes:
        raise RejectedInput(f"closure code {closure_code!r} does not fit {to}: {', '.join(codes)}")


def ticket_body(row: TicketRow) -> dict[str, Any]:
    """The ticket as webhooks carry it: what a mirroring system needs, no personal data."""
    return {
        "id": row.id,
        "reference": ticket_reference(row.id),
        "correlation_id": row.correlation_id,
        "device_id": row.device_id,
        "product_kind": row.product_kind,
        "fault": row.fault,
        "action": row.action,
        "status": row.status,
        "severity": row.severity,
        "priority": row.priority,
        "due_ms": row.due_ms,
        "eta_ms": row.eta_ms,
        "region": row.region,
        "skill": row.skill,
        "assignee_id": row.assignee_id,
        "booked_start_ms": row.booked_start_ms,
        "booked_end_ms": row.booked_end_ms,
        "acknowledged_ms": row.acknowledged_ms,
        "escalation_level": row.escalation_level,
        "sla_breached_ms": row.sla_breached_ms,
        "closure_code": row.closure_code,
        "summary": row.summary,
    }


def record_event(
    session: Session,
    insert: InsertFn,
    row: TicketRow,
    now_ms: int,
    actor: str,
    kind: str,
    detail: Mapping[str, Any],
) -> TicketEventRow:
    """Add one event to the ticket's history and queue it for the webhooks, in ``session``."""
    event = TicketEventRow(
        ticket_id=row.id, ts_ms=now_ms, actor=actor, kind=kind, detail=json.dumps(detail)
    )
    session.add(event)
    session.flush()
    queue_event(
        session,
        insert,
        event_id=event.id,
        kind=kind,
        ts_ms=now_ms,
        actor=actor,
        detail=detail,
        ticket=ticket_body(row),
    )
    return event


def change_status(
    session: Session,
    insert: InsertFn,
    row: TicketRow,
    to: str,
    *,
    actor: str,
    now_ms: int,
    closure_code: str | None = None,
    note: str | None = None,
    assignee_id: str | None = None,
    booked: tuple[int, int] | None = None,
) -> None:
    """Move ``row`` to ``to`` or raise ``IllegalTransition``; records the event."""
    allowed = allowed_next(row.action, row.status)
    if to not in allowed:
        raise IllegalTransition(ticket_reference(row.id), row.status, to, allowed)
    check_closure(row, to, closure_code)
    if to == "assigned" and assignee_id is None:
        raise RejectedInput("assigning a ticket needs a technician")
    previous = row.status
    row.status, row.status_ms, row.updated_ms = to, now_ms, now_ms
    if to in ("assigned", "new"):
        # A new owner must acknowledge again, and gets a fresh reminder clock.
        row.assignee_id = assignee_id
        row.acknowledged_ms = None
        row.escalation_level = 0
        row.booked_start_ms, row.booked_end_ms = booked if booked else (None, None)
    elif to in ("en_route", "on_site"):
        row.acknowledged_ms = row.acknowledged_ms or now_ms
    if to in CLOSED_STATUSES:
        row.closure_code, row.closed_ms = closure_code, now_ms
        if closure_code in ("fault_confirmed", "no_fault_found"):
            _learn(session, insert, row.device_id, closure_code, now_ms)
    detail: dict[str, Any] = {"from": previous, "to": to}
    extras = {
        "assignee_id": assignee_id,
        "booked_start_ms": booked[0] if booked else None,
        "booked_end_ms": booked[1] if booked else None,
        "closure_code": closure_code,
        "note": note,
    }
    detail.update({k: v for k, v in extras.items() if v is not None})
    record_event(session, insert, row, now_ms, actor, "status", detail)
    if to in CLOSED_STATUSES and to != "cancelled" and now_ms > row.due_ms:
        mark_breached(session, insert, row, now_ms, actor)


def mark_breached(
    session: Session, insert: InsertFn, row: TicketRow, now_ms: int, actor: str
) -> bool:
    if row.sla_breached_ms is not None:
        return False
    row.sla_breached_ms = row.due_ms
    detail = {"due_ms": row.due_ms, "late_by_ms": now_ms - row.due_ms, "status": row.status}
    record_event(session, insert, row, now_ms, actor, "sla_breached", detail)
    return True


def acknowledge(
    session: Session, insert: InsertFn, row: TicketRow, actor: str, now_ms: int
) -> bool:
    """Someone took note of an open ticket; ``False`` when it was acknowledged already."""
    if row.status not in OPEN_STATUSES:
        raise IllegalTransition(ticket_reference(row.id), row.status, "acknowledged", ())
    if row.acknowledged_ms is not None:
        return False
    row.acknowledged_ms, row.updated_ms = now_ms, now_ms
    record_event(session, insert, row, now_ms, actor, "acknowledged", {"status": row.status})
    return True


def escalate_overdue(session: Session, insert: InsertFn, now_ms: int) -> TickResult:
    """Reminders, escalations and SLA breaches due at ``now_ms``; each happens once per ticket.

    A dispatch ticket waiting in ``new`` or ``assigned`` without acknowledgement gets a reminder
    after ``ACK_MS[priority]`` and is escalated after twice that (the clock restarts with each
    assignment). Any open ticket past its due time is marked breached.
    """
    unacknowledged = sa.and_(
        TicketRow.action == "dispatch",
        TicketRow.status.in_(("new", "assigned")),
        TicketRow.acknowledged_ms.is_(None),
        TicketRow.escalation_level < 2,
    )
    late = sa.and_(TicketRow.sla_breached_ms.is_(None), TicketRow.due_ms < now_ms)
    rows = session.scalars(
        sa.select(TicketRow)
        .where(TicketRow.status.in_(OPEN_STATUSES), sa.or_(unacknowledged, late))
        .order_by(TicketRow.id)
        .with_for_update(skip_locked=True)
    ).all()
    reminders = escalations = breaches = 0
    for row in rows:
        start = row.status_ms if row.status_ms is not None else row.opened_ms
        window = ACK_MS[Priority(row.priority)]
        waiting = row.action == "dispatch" and row.status in ("new", "assigned")
        if waiting and row.acknowledged_ms is None:
            to = row.assignee_id or "dispatch"
            if row.escalation_level == 0 and now_ms >= start + window:
                row.escalation_level = 1
                detail = {"to": to, "waiting_ms": now_ms - start}
                record_event(session, insert, row, now_ms, ESCALATION_ACTOR, "reminder", detail)
                reminders += 1
            if row.escalation_level == 1 and now_ms >= start + 2 * window:
                row.escalation_level = 2
                detail = {"to": "dispatch_lead", "assignee_id": row.assignee_id,
                          "waiting_ms": now_ms - start}  # fmt: skip
                record_event(session, insert, row, now_ms, ESCALATION_ACTOR, "escalated", detail)
                escalations += 1
        if row.due_ms < now_ms:
            breaches += mark_breached(session, insert, row, now_ms, ESCALATION_ACTOR)
    return TickResult(reminders=reminders, escalations=escalations, sla_breaches=breaches)


def _learn(session: Session, insert: InsertFn, device_id: str, code: str, now_ms: int) -> None:
    nff = code == "no_fault_found"
    stmt = insert(DeviceFeedbackRow).values(
        device_id=device_id, nff_streak=int(nff), last_code=code, updated_ms=now_ms
    )
    streak = DeviceFeedbackRow.nff_streak + 1 if nff else sa.literal(0)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["device_id"],
            set_={"nff_streak": streak, "last_code": code, "updated_ms": now_ms},
        )
    )


def bar_for(nff_streak: int) -> float:
    """The bar of a device after ``nff_streak`` no-fault-found closures in a row.

    >>> [bar_for(n) for n in (0, 1, 2, 3, 9)]
    [1.0, 1.0, 1.5, 2.0, 3.0]
    """
    return min(1.0 + NFF_BAR_STEP * max(nff_streak - 1, 0), MAX_BAR)


def device_bars(session: Session) -> dict[str, float]:
    """Per device, how much harder the policy should make it to open the next episode.

    Counts the device's no-fault-found closures since its last confirmed fault: one false alarm
    is forgiven, each further one adds ``NFF_BAR_STEP`` (up to ``MAX_BAR``). Only devices with a
    bar above 1 are listed. A customer declining a visit says nothing about the alarm.
    """
    rows = session.execute(
        sa.select(DeviceFeedbackRow.device_id, DeviceFeedbackRow.nff_streak).where(
            DeviceFeedbackRow.nff_streak >= 2
        )
    )
    return {device: bar_for(n) for device, n in rows}
