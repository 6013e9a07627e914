"""The ticket desk of ``ActionService``: assign, acknowledge, move, escalate, learn."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from sqlalchemy.orm import Session, sessionmaker

from cloud.actions import restock, tickets
from cloud.actions.db import InsertFn, TechnicianRow, TicketRow, transaction
from cloud.actions.mailer import queue_ticket_email
from cloud.actions.records import RestockOrder, Ticket, TickResult
from cloud.actions.tickets import CLOSED_STATUSES, OPEN_STATUSES
from cloud.decision_types import Action
from cloud.errors import RejectedInput

STATUSES: Final = OPEN_STATUSES + CLOSED_STATUSES
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


class TicketDesk:
    """Lifecycle operations on the tickets of ``ActionService``'s database."""

    _sessions: sessionmaker[Session]
    _insert: InsertFn
    _clock_ms: Callable[[], int]

    def assign(
        self,
        ticket_id: int,
        technician_id: str,
        *,
        actor: str,
        booked_start_ms: int | None = None,
        booked_end_ms: int | None = None,
    ) -> Ticket:
        """Hand a ticket to a technician (again), optionally with a booked visit slot.

        The technician must be registered and active. A booked slot queues the customer's
        "visit booked" email in the same transaction.
        """
        booked = _slot(booked_start_ms, booked_end_ms)
        _check_line("actor", actor, 64)
        with transaction(self._sessions) as session:
            row = self._locked(session, ticket_id)
            tech = session.get(TechnicianRow, technician_id)
            if tech is None or not tech.active:
                raise RejectedInput(f"no active technician {technician_id!r}")
            now = self._clock_ms()
            tickets.change_status(
                session, self._insert, row, "assigned", actor=actor, now_ms=now,
                assignee_id=tech.id, booked=booked,
            )  # fmt: skip
            if booked is not None:
                self._queue_ticket_update_email(session, row, "visit_booked", now)
            return row.record()

    def acknowledge(self, ticket_id: int, *, actor: str) -> Ticket:
        """Someone has seen the ticket: stops its reminders. Repeating it changes nothing."""
        _check_line("actor", actor, 64)
        with transaction(self._sessions) as session:
            row = self._locked(session, ticket_id)
            tickets.acknowledge(session, self._insert, row, actor, self._clock_ms())
            return row.record()

    def move(
        self,
        ticket_id: int,
        status: str,
        *,
        actor: str,
        closure_code: str | None = None,
        note: str | None = None,
    ) -> Ticket:
        """Change a ticket's status along the lifecycle (see ``cloud.actions.tickets``).

        Closing needs a closure code (``resolved``: fault_confirmed or no_fault_found;
        ``closed_incomplete``: any of the three). An illegal step raises ``IllegalTransition``;
        assigning goes through ``assign``. Resolving queues the customer's "resolved" email.
        """
        if status not in STATUSES:
            raise RejectedInput(f"unknown ticket status {status!r}")
        if status == "assigned":
            raise RejectedInput("use assign() to give a ticket to a technician")
        _check_line("actor", actor, 64)
        if note is not None:
            _check_line("note", note.replace("\n", " "), 2000, required=False)
        with transaction(self._sessions) as session:
            row = self._locked(session, ticket_id)
            now = self._clock_ms()
            tickets.change_status(
                session, self._insert, row, status, actor=actor, now_ms=now,
                closure_code=closure_code, note=note,
            )  # fmt: skip
            if status == "resolved":
                self._queue_ticket_update_email(session, row, "ticket_resolved", now)
            if row.action == Action.RESTOCK.value and status not in OPEN_STATUSES:
                restock.close_for_ticket(session, row, now)
            return row.record()

    def close_restock(self, order_id: int, *, actor: str, delivered: bool = True) -> RestockOrder:
        """A route driver filled the machine (or the stop was dropped): close order and ticket."""
        _check_line("actor", actor, 64)
        with transaction(self._sessions) as session:
            now = self._clock_ms()
            status = "delivered" if delivered else "cancelled"
            order = restock.close_order(session, order_id, status, now)
            row = self._locked(session, order.ticket_id)
            if row.status in OPEN_STATUSES:
                to = "resolved" if delivered else "cancelled"
                code = "fault_confirmed" if delivered else None
                tickets.change_status(
                    session, self._insert, row, to, actor=actor, now_ms=now, closure_code=code
                )
            return restock.order_record(order)

    def tick(self, now_ms: int) -> TickResult:
        """Reminders, escalations and SLA breaches due at ``now_ms``; call it periodically.

        Idempotent: each reminder, escalation and breach is recorded once per ticket (and once
        more per reassignment for reminders), however often this runs.
        """
        with transaction(self._sessions) as session:
            return tickets.escalate_overdue(session, self._insert, now_ms)

    def device_bars(self) -> dict[str, float]:
        """Per device, the factor by which repeated no-fault-found closures raise its bar.

        Pass it to ``cloud.decisions.decide(..., bars=...)``: the persistence a non-critical
        condition needs before it opens an episode is multiplied by the bar.
        """
        with transaction(self._sessions) as session:
            return tickets.device_bars(session)

    def _locked(self, session: Session, ticket_id: int) -> TicketRow:
        row = session.get(TicketRow, ticket_id, with_for_update=True)
        if row is None:
            raise RejectedInput(f"no ticket {ticket_id}")
        return row

    def _queue_ticket_update_email(
        self, session: Session, row: TicketRow, kind: str, now_ms: int
    ) -> int:
        """Queue the customer's follow-up email in the ticket's thread (``visit_booked``,
        ``ticket_resolved``, ``safety_alert``); returns how many were queued (0 or 1)."""
        return int(queue_ticket_email(session, row, kind, now_ms) is not None)


def _slot(start_ms: int | None, end_ms: int | None) -> tuple[int, int] | None:
    if start_ms is None and end_ms is None:
        return None
    if start_ms is None or end_ms is None or not 0 <= start_ms < end_ms:
        raise RejectedInput("a booked slot needs booked_start_ms < booked_end_ms")
    return start_ms, end_ms


def _check_line(label: str, value: str, max_chars: int, *, required: bool = True) -> None:
    if required and not value.strip():
        raise RejectedInput(f"{label} is empty")
    if len(value) > max_chars or _CONTROL_RE.search(value):
        raise RejectedInput(f"{label} must be one line of at most {max_chars} characters")
