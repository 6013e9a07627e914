"""``ActionService``: decisions in, one ticket and at most one email per root cause out."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from email.headerregistry import Address
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from cloud.actions import restock, tickets
from cloud.actions.db import (
    CustomerRow,
    DeviceRow,
    EmailRow,
    OutboxRow,
    TicketEventRow,
    TicketRow,
    insert_for,
    transaction,
)
from cloud.actions.desk import TicketDesk
from cloud.actions.email import EmailRenderer
from cloud.actions.mailer import MailSettings, queue_opened_email
from cloud.actions.outbox import OutboxRelay, RetryPolicy
from cloud.actions.priority import Priority, due_ms_for, lead_ms, more_urgent, priority_for
from cloud.actions.records import (
    ApplyResult,
    Counts,
    DeliveryResult,
    Email,
    OutboxItem,
    Ticket,
)
from cloud.actions.senders import EmailSender
from cloud.actions.technicians import TechnicianRegistry, pick_technician, skill_for
from cloud.actions.webhooks import HttpPoster, UrllibPoster, WebhookDelivery, WebhookRegistry
from cloud.decision_types import Action, Decision, Severity
from cloud.errors import RejectedInput
from firmware_specs import DEVICE_ID_PATTERN, DEVICE_ID_RE, KINDS

# fmt: off
TICKET_STATUSES: Final = (
    "new", "assigned", "en_route", "on_site", "resolved", "closed_incomplete", "cancelled",
)
# fmt: on
OUTBOX_STATES: Final = ("pending", "sending", "sent", "parked", "suppressed")
OPEN_STATUSES: Final = ("new", "assigned", "en_route", "on_site")
ACTOR: Final = "decisions"
AUTO_ASSIGN_ACTOR: Final = "auto-assign"
MAX_PAGE: Final = 1000
_SEVERITY_RANK: Final = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}
_LOCALE_RE: Final = re.compile(r"^[a-z]{2}(-[A-Z]{2})?$")
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


class ActionService(TicketDesk):
    """Tickets, customers and the email outbox behind one repository-style API.

    ``clock_ms`` stamps rows (``opened_ms``, ``updated_ms``, retry times); priorities and due
    times come from the decision's own data time, so replays give the same answers.

    Registries hang off the service: ``technicians`` (who can be sent where), ``webhooks``
    (who mirrors the tickets) and ``restock`` (route pick lists). Every state change of a
    ticket is an event with time and actor, offered to the webhooks in the same transaction.
    """

    def __init__(
        self,
        engine: Engine,
        renderer: EmailRenderer,
        sender: EmailSender,
        clock_ms: Callable[[], int],
        *,
        retry: RetryPolicy | None = None,
        webhook_poster: HttpPoster | None = None,
    ) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._insert = insert_for(engine)
        self._renderer = renderer
        self._clock_ms = clock_ms
        delivery = WebhookDelivery(self._sessions, webhook_poster or UrllibPoster(), clock_ms)
        self._relay = OutboxRelay(
            self._sessions, renderer, sender, clock_ms, retry or RetryPolicy(), delivery
        )
        self.technicians = TechnicianRegistry(self._sessions, self._insert, clock_ms)
        self.webhooks = WebhookRegistry(self._sessions, clock_ms)
        self.restock = restock.RestockPlanner(self._sessions, clock_ms)

    # -- customers and devices ------------------------------------------------------------

    def upsert_customer(
        self,
        customer_id: str,
        name: str,
        email: str | None = None,
        *,
        locale: str = "en",
        tz: str = "UTC",
    ) -> None:
        """Create or replace a customer; refuses what could not be put safely into an email."""
        _check_text("customer id", customer_id, 64, required=True)
        _check_text("customer name", name, 200, required=True)
        if email is not None:
            _check_text("email", email, 320, required=True)
            try:
                Address(addr_spec=email)
            except (ValueError, IndexError) as exc:
                raise RejectedInput(f"email {email!r} is not an address: {exc}") from exc
        if not _LOCALE_RE.match(locale):
            raise RejectedInput(f"locale {locale!r} is not like 'en' or 'de-CH'")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise RejectedInput(f"time zone {tz!r} is not an IANA zone name") from exc
        values = {"name": name, "email": email, "locale": locale, "tz": tz}
        stmt = self._insert(CustomerRow).values(
            id=customer_id, created_ms=self._clock_ms(), **values
        )
        with transaction(self._sessions) as session:
            session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=values))

    def upsert_device(
        self,
        device_id: str,
        product_kind: str,
        customer_id: str | None = None,
        nickname: str | None = None,
        region: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        if not DEVICE_ID_RE.match(device_id):
            raise RejectedInput(f"device id {device_id!r} does not match {DEVICE_ID_PATTERN}")
        if product_kind not in KINDS:
            raise RejectedInput(f"unknown product kind {product_kind!r}")
        if nickname is not None:
            _check_text("nickname", nickname, 200, required=False)
        values = {
            "product_kind": product_kind,
            "customer_id": customer_id,
            "nickname": nickname,
            "region": region,
            "attributes": dict(attributes or {}),
        }
        stmt = self._insert(DeviceRow).values(device_id=device_id, **values)
        with transaction(self._sessions) as session:
            if customer_id is not None and session.get(CustomerRow, customer_id) is None:
                raise RejectedInput(f"device {device_id}: unknown customer {customer_id!r}")
            session.execute(stmt.on_conflict_do_update(index_elements=["device_id"], set_=values))

    # -- decisions ------------------------------------------------------------------------

    def apply(self, decisions: Sequence[Decision]) -> ApplyResult:
        """Open or update one ticket per root cause, and queue its email, in one transaction.

        A decision whose ``decision_id`` is known and whose data is not newer than the ticket's
        newest evidence (a duplicate, a replay after a restart) changes nothing. The customer
        email is queued only when the ticket opens, keyed ``email:{decision_id}:opened``.
        """
        opened = updated = queued = unchanged = 0
        now = self._clock_ms()
        # One lock order for every caller (no deadlock between concurrent calls), and evidence of
        # one root cause in data-time order.
        ordered = sorted(decisions, key=lambda d: (d.decision_id, d.ts_ms))
        with transaction(self._sessions) as session:
            for decision in ordered:
                root = self._open_ticket_of_root_cause(session, decision)
                if root is not None:
                    # The same root cause under another episode id (e.g. re-detected after a
                    # restart that lost the policy state): evidence for the open ticket.
                    if self._add_evidence_to(session, root, decision, now):
                        updated += 1
                        self._refresh_order(session, root, decision, now)
                    else:
                        unchanged += 1
                    continue
                ticket_id = self._open_ticket(session, decision, now)
                if ticket_id is not None:
                    opened += 1
                    queued += self._queue_opened_email(session, decision, ticket_id, now)
                    row = session.get(TicketRow, ticket_id)
                    if row is not None:
                        self._refresh_order(session, row, decision, now)
                        self._auto_assign(session, row, now)
                elif self._add_evidence(session, decision, now):
                    updated += 1
                    row = self._ticket_row(session, decision.decision_id)
                    self._refresh_order(session, row, decision, now)
                else:
                    unchanged += 1
        return ApplyResult(opened, updated, queued, unchanged)

    def _open_ticket(self, session: Session, d: Decision, now: int) -> int | None:
        lead = lead_ms(d.ts_ms, d.eta_ms, d.eta_lo_ms)
        device = session.get(DeviceRow, d.device_id)
        priority = priority_for(Severity(d.severity), lead)
        stmt = (
            self._insert(TicketRow)
            .values(
                correlation_id=d.decision_id,
                device_id=d.device_id,
                product_kind=d.product_kind,
                fault=d.fault,
                action=Action(d.action).value,
                status="new",
                severity=Severity(d.severity).value,
                priority=priority.value,
                due_ms=due_ms_for(priority, d.ts_ms, lead),
                score=d.score,
                summary=d.summary,
                eta_ms=d.eta_ms,
                eta_lo_ms=d.eta_lo_ms,
                eta_hi_ms=d.eta_hi_ms,
                evidence_ts_ms=d.ts_ms,
                evidence_count=1,
                opened_ms=now,
                updated_ms=now,
                region=None if device is None else device.region,
                skill=skill_for(d.product_kind, d.fault),
                status_ms=now,
                escalation_level=0,
            )
            .on_conflict_do_nothing(index_elements=["correlation_id"])
            .returning(TicketRow.id)
        )
        ticket_id = session.execute(stmt).scalar_one_or_none()
        if ticket_id is not None:
            detail = {"priority": priority.value, "severity": d.severity, "fault": d.fault}
            row = session.get(TicketRow, ticket_id)
            if row is not None:
                tickets.record_event(session, self._insert, row, now, ACTOR, "opened", detail)
        return ticket_id

    def _auto_assign(self, session: Session, row: TicketRow, now: int) -> None:
        """Give a new dispatch ticket to the best technician of its region, if there is one."""
        if row.action != Action.DISPATCH.value:
            return
        tech = pick_technician(session, row.region, row.skill, now)
        if tech is not None:
            tickets.change_status(
                session, self._insert, row, "assigned", actor=AUTO_ASSIGN_ACTOR, now_ms=now,
                assignee_id=tech.id,
            )  # fmt: skip

    def _refresh_order(self, session: Session, row: TicketRow, d: Decision, now: int) -> None:
        if d.action == Action.RESTOCK and row.status in OPEN_STATUSES:
            restock.upsert_order(session, self._insert, row, d, now)

    def _ticket_row(self, session: Session, correlation_id: str) -> TicketRow:
        return session.scalars(
            sa.select(TicketRow).where(TicketRow.correlation_id == correlation_id)
        ).one()

    def _open_ticket_of_root_cause(self, session: Session, d: Decision) -> TicketRow | None:
        """An open ticket for the same device and fault under another decision id, if any."""
        return session.scalars(
            sa.select(TicketRow)
            .where(
                TicketRow.device_id == d.device_id,
                TicketRow.fault == d.fault,
                TicketRow.correlation_id != d.decision_id,
                TicketRow.status.in_(OPEN_STATUSES),
            )
            .order_by(TicketRow.id.desc())
            .limit(1)
            .with_for_update()
        ).first()

    def _add_evidence(self, session: Session, d: Decision, now: int) -> bool:
        row = session.scalars(
            sa.select(TicketRow).where(TicketRow.correlation_id == d.decision_id).with_for_update()
        ).one()
        return self._add_evidence_to(session, row, d, now)

    def _add_evidence_to(self, session: Session, row: TicketRow, d: Decision, now: int) -> bool:
        if d.ts_ms <= row.evidence_ts_ms:
            return False
        was = Severity(row.severity)
        severity = max(was, Severity(d.severity), key=_SEVERITY_RANK.__getitem__)
        lead = lead_ms(d.ts_ms, d.eta_ms, d.eta_lo_ms)
        # Urgency never relaxes: a team may already have planned around it.
        priority = more_urgent(Priority(row.priority), priority_for(severity, lead))
        row.severity = severity.value
        row.priority = priority.value
        row.due_ms = min(row.due_ms, due_ms_for(priority, d.ts_ms, lead))
        row.score, row.summary = d.score, d.summary
        row.eta_ms, row.eta_lo_ms, row.eta_hi_ms = d.eta_ms, d.eta_lo_ms, d.eta_hi_ms
        row.evidence_ts_ms = d.ts_ms
        row.evidence_count += 1
        row.updated_ms = now
        detail = {"ts_ms": d.ts_ms, "severity": row.severity, "priority": row.priority,
                  "score": round(d.score, 4), "eta_ms": d.eta_ms}  # fmt: skip
        tickets.record_event(session, self._insert, row, now, ACTOR, "evidence", detail)
        if row.action == Action.ADVICE and severity is Severity.CRITICAL and was is not severity:
            # The customer acts on advice (a slow leak that became a puncture): they hear of it
            # now, in the thread. A dispatch ticket's team sees the new priority instead.
            self._queue_ticket_update_email(session, row, "safety_alert", now)
        return True

    def _queue_opened_email(self, session: Session, d: Decision, ticket_id: int, now: int) -> int:
        """The root cause's first customer email (consent, caps and quiet hours apply)."""
        settings = MailSettings.of(self._renderer.brand)
        return int(queue_opened_email(session, d, ticket_id, now, settings) is not None)

    # -- outbox ---------------------------------------------------------------------------

    def deliver_pending(self, limit: int = 100) -> DeliveryResult:
        """Send up to ``limit`` due emails; see ``cloud.actions.outbox`` for the guarantees."""
        return self._relay.deliver_pending(limit)

    def parked(self, limit: int = 100) -> list[OutboxItem]:
        """Items that need a human: given up, refused, or in doubt (see ``last_error``)."""
        return self.outbox(state="parked", limit=limit)

    def outbox(
        self, state: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[OutboxItem]:
        if state is not None and state not in OUTBOX_STATES:
            raise RejectedInput(f"unknown outbox state {state!r}")
        return self._relay.items(state, *_page(limit, offset))

    def requeue(self, outbox_id: int) -> bool:
        return self._relay.requeue(outbox_id)

    # -- reads ----------------------------------------------------------------------------

    def tickets(
        self,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
        *,
        assignee_id: str | None = None,
        device_id: str | None = None,
        breached: bool | None = None,
    ) -> list[Ticket]:
        """Newest first, optionally only one status, one technician's, one device's, or only
        those whose SLA was (``breached=True``) or was not missed."""
        limit, offset = _page(limit, offset)
        if status is not None and status not in TICKET_STATUSES:
            raise RejectedInput(f"unknown ticket status {status!r}")
        query = sa.select(TicketRow).order_by(TicketRow.id.desc()).limit(limit).offset(offset)
        if status is not None:
            query = query.where(TicketRow.status == status)
        if assignee_id is not None:
            query = query.where(TicketRow.assignee_id == assignee_id)
        if device_id is not None:
            query = query.where(TicketRow.device_id == device_id)
        if breached is not None:
            missed = TicketRow.sla_breached_ms.is_not(None)
            query = query.where(missed if breached else sa.not_(missed))
        with transaction(self._sessions) as session:
            return [row.record() for row in session.scalars(query)]

    def ticket(self, ticket_id: int) -> Ticket | None:
        """One ticket with its events, oldest event first."""
        return self._ticket_where(TicketRow.id == ticket_id)

    def ticket_by_correlation(self, correlation_id: str) -> Ticket | None:
        return self._ticket_where(TicketRow.correlation_id == correlation_id)

    def _ticket_where(self, condition: sa.ColumnElement[bool]) -> Ticket | None:
        with transaction(self._sessions) as session:
            row = session.scalars(sa.select(TicketRow).where(condition)).one_or_none()
            if row is None:
                return None
            events = session.scalars(
                sa.select(TicketEventRow)
                .where(TicketEventRow.ticket_id == row.id)
                .order_by(TicketEventRow.id)
            )
            return row.record(tuple(event.record() for event in events))

    def emails(self, limit: int = 50, offset: int = 0) -> list[Email]:
        limit, offset = _page(limit, offset)
        query = sa.select(EmailRow).order_by(EmailRow.id.desc()).limit(limit).offset(offset)
        with transaction(self._sessions) as session:
            return [row.record() for row in session.scalars(query)]

    def counts(self) -> Counts:
        """Rows per status of tickets and emails, and per state of the outbox."""
        with transaction(self._sessions) as session:

            def by(column: InstrumentedAttribute[str]) -> dict[str, int]:
                rows = session.execute(sa.select(column, sa.func.count()).group_by(column))
                return {str(key): int(count) for key, count in rows}

            return Counts(
                tickets=by(TicketRow.status), emails=by(EmailRow.status), outbox=by(OutboxRow.state)
            )


def _check_text(label: str, value: str, max_chars: int, *, required: bool) -> None:
    if required and not value.strip():
        raise RejectedInput(f"{label} is empty")
    if len(value) > max_chars:
        raise RejectedInput(f"{label} is longer than {max_chars} characters")
    if _CONTROL_RE.search(value):
        raise RejectedInput(f"{label} contains control characters or line breaks: {value!r}")


def _page(limit: int, offset: int) -> tuple[int, int]:
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise RejectedInput(f"limit must be 1..{MAX_PAGE} and offset >= 0")
    return limit, offset
