"""Queue customer emails: consent, one thread per root cause, quiet hours and caps, exactly once.

Every customer email goes through ``queue_email`` inside the caller's transaction:

1. no address, or no consent for the kind's category → nothing is queued;
2. threaded kinds join the root cause's thread (``email_threads``, keyed by correlation id):
   the first message is the root; later ones carry ``In-Reply-To``/``References`` to it and
   keep its subject (a safety notice keeps its own), so mail programs show one conversation
   per root cause;
3. the send time is now, or the end of the customer's quiet hours, or the first local day under
   the frequency cap — safety notices skip both;
4. the outbox row is inserted under its idempotency key (a duplicate changes nothing), with
   ``next_attempt_ms`` at that send time, and an ``emails`` row records what and when.

Nothing here logs personal data: log lines carry outbox ids and kinds only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import time
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from cloud.actions.consent import SAFETY, SendPolicy, kind_of, may_send
from cloud.actions.db import Base, CustomerRow, DeviceRow, EmailRow, OutboxRow, TicketRow
from cloud.actions.email import Brand, EmailFacts, message_id_for
from cloud.actions.records import ticket_reference
from cloud.decision_types import Action, Decision, Severity
from cloud.errors import RejectedInput

logger = logging.getLogger(__name__)

TICKET_KINDS: Final = ("visit_booked", "ticket_resolved", "safety_alert")
OPENED_KIND_FOR: Final = {Action.DISPATCH: "dispatch_opened", Action.ADVICE: "advice"}
_COUNTED_STATUSES: Final = ("queued", "sent")


class EmailThreadRow(Base):
    """The first message of a root cause's conversation, and the settings it started with."""

    __tablename__ = "email_threads"

    correlation_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    customer_id: Mapped[str | None] = mapped_column(sa.ForeignKey("customers.id"))
    root_message_id: Mapped[str] = mapped_column(sa.String(128))
    root_kind: Mapped[str] = mapped_column(sa.String(40))
    message_id_domain: Mapped[str] = mapped_column(sa.String(200))
    policy: Mapped[dict[str, Any]]
    created_ms: Mapped[int]


@dataclass(frozen=True, slots=True)
class MailSettings:
    """What queueing needs from the brand: the Message-ID domain and the sending policy."""

    message_id_domain: str = "forewarn.invalid"
    policy: SendPolicy = field(default_factory=SendPolicy)

    @classmethod
    def of(cls, brand: Brand) -> MailSettings:
        return cls(brand.message_id_domain, brand.sending)

    def policy_payload(self) -> dict[str, Any]:
        p = self.policy
        return {
            "daily_cap": p.daily_cap,  # None: no cap
            "quiet_from": p.quiet_from.isoformat("minutes"),
            "quiet_until": p.quiet_until.isoformat("minutes"),
            "reminder_at": p.reminder_at.isoformat("minutes"),
        }

    @classmethod
    def from_thread(cls, thread: EmailThreadRow) -> MailSettings:
        p = thread.policy
        policy = SendPolicy(
            daily_cap=None if p["daily_cap"] is None else int(p["daily_cap"]),
            quiet_from=time.fromisoformat(p["quiet_from"]),
            quiet_until=time.fromisoformat(p["quiet_until"]),
            reminder_at=time.fromisoformat(p["reminder_at"]),
        )
        return cls(thread.message_id_domain, policy)


@dataclass(frozen=True, slots=True)
class Content:
    """What the email is about (everything but the recipient and the headers)."""

    product_kind: str = ""
    nickname: str | None = None
    fault: str = ""
    summary: str = ""
    ticket_ref: str = ""
    eta_ms: int | None = None
    eta_lo_ms: int | None = None
    eta_hi_ms: int | None = None
    details: tuple[tuple[str, str], ...] = ()
    slot_start_ms: int | None = None
    slot_end_ms: int | None = None
    due_on: str | None = None


def queue_email(
    session: Session,
    *,
    key: str,
    kind: str,
    customer: CustomerRow,
    correlation_id: str,
    content: Content,
    now_ms: int,
    settings: MailSettings,
    not_before_ms: int | None = None,
) -> int | None:
    """Queue one email; the outbox id, or ``None`` when nothing was queued (see module doc)."""
    spec = kind_of(kind)
    if not customer.email or not may_send(session, customer.id, spec.category):
        return None
    message_id = message_id_for(key, settings.message_id_domain)
    thread_kind: str | None = None
    references: tuple[str, ...] = ()
    if spec.threaded:
        thread = _thread(session, correlation_id, customer.id, message_id, kind, now_ms, settings)
        if thread.root_message_id != message_id:
            references = (thread.root_message_id,)
            # A safety notice keeps its own, urgent subject even inside a thread.
            thread_kind = None if spec.critical else thread.root_kind
    try:
        zone = ZoneInfo(customer.tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RejectedInput(f"customer time zone {customer.tz!r} is unknown") from exc
    earliest = max(now_ms, not_before_ms or now_ms)
    if spec.critical:
        send_ms = earliest
    else:

        def count_on_day(start_ms: int, end_ms: int) -> int:
            return _scheduled_between(session, customer.id, start_ms, end_ms)

        send_ms = settings.policy.schedule(earliest, zone, count_on_day)
    facts = EmailFacts(
        kind=kind,
        locale=customer.locale,
        tz=customer.tz,
        to_name=customer.name,
        to_addr=customer.email,
        nickname=content.nickname,
        product_kind=content.product_kind,
        fault=content.fault,
        summary=content.summary,
        ticket_ref=content.ticket_ref,
        correlation_id=correlation_id,
        message_id=message_id,
        eta_ms=content.eta_ms,
        eta_lo_ms=content.eta_lo_ms,
        eta_hi_ms=content.eta_hi_ms,
        details=content.details,
        customer_id=customer.id,
        slot_start_ms=content.slot_start_ms,
        slot_end_ms=content.slot_end_ms,
        due_on=content.due_on,
        thread_kind=thread_kind,
        references=references,
        deferred_to_ms=send_ms if send_ms > now_ms else None,
    )
    insert = _insert(session)
    outbox_id = session.execute(
        insert(OutboxRow)
        .values(
            idempotency_key=key,
            kind="email",
            payload=facts.to_payload(),
            state="pending",
            attempts=0,
            claims=0,
            next_attempt_ms=send_ms,
            created_ms=now_ms,
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(OutboxRow.id)
    ).scalar_one_or_none()
    if outbox_id is None:
        return None
    session.execute(
        insert(EmailRow)
        .values(
            message_id=message_id,
            correlation_id=correlation_id,
            customer_id=customer.id,
            to_addr=customer.email,
            kind=kind,
            status="queued",
            created_ms=now_ms,
            category=spec.category,
            outbox_key=key,
            scheduled_ms=send_ms,
        )
        .on_conflict_do_nothing(index_elements=["message_id"])
    )
    if send_ms > now_ms:
        logger.info("email %s (%s) deferred by %d s", outbox_id, kind, (send_ms - now_ms) // 1000)
    return int(outbox_id)


def opened_kind(decision: Decision) -> str | None:
    """The email a new ticket sends: a safety notice for critical advice (a puncture)."""
    action = Action(decision.action)
    if action is Action.ADVICE and Severity(decision.severity) is Severity.CRITICAL:
        return "safety_alert"
    return OPENED_KIND_FOR.get(action)


def queue_opened_email(
    session: Session, decision: Decision, ticket_id: int, now_ms: int, settings: MailSettings
) -> int | None:
    """The first email of a root cause, when its ticket opens; keyed ``email:{id}:opened``."""
    kind = opened_kind(decision)
    if kind is None:
        return None
    found = _device_and_customer(session, decision.device_id)
    if found is None:
        return None
    nickname, customer = found
    content = Content(
        product_kind=decision.product_kind,
        nickname=nickname,
        fault=decision.fault,
        summary=decision.summary,
        ticket_ref=ticket_reference(ticket_id),
        eta_ms=decision.eta_ms,
        eta_lo_ms=decision.eta_lo_ms,
        eta_hi_ms=decision.eta_hi_ms,
        details=decision.details,
    )
    return queue_email(
        session,
        key=f"email:{decision.decision_id}:opened",
        kind=kind,
        customer=customer,
        correlation_id=decision.decision_id,
        content=content,
        now_ms=now_ms,
        settings=settings,
    )


def queue_ticket_email(
    session: Session,
    ticket_row: TicketRow,
    kind: str,
    now_ms: int,
    *,
    settings: MailSettings | None = None,
) -> int | None:
    """A lifecycle email in the ticket's thread: ``visit_booked``, ``ticket_resolved``, or
    ``safety_alert`` when new evidence makes an open advice ticket critical (a slow leak that
    became a puncture).

    A booked visit is keyed by its slot, so a rebooking sends a new email and a repeated
    booking of the same slot does not; the others are sent once per ticket. Without
    ``settings`` the thread's own are used.
    """
    if kind not in TICKET_KINDS:
        raise RejectedInput(f"ticket email kind must be one of {TICKET_KINDS}, not {kind!r}")
    found = _device_and_customer(session, ticket_row.device_id)
    if found is None:
        return None
    nickname, customer = found
    if kind == "visit_booked":
        start, end = ticket_row.booked_start_ms, ticket_row.booked_end_ms
        if start is None or end is None:
            logger.warning("ticket %s: visit_booked without a booked slot", ticket_row.id)
            return None
        key = f"email:{ticket_row.correlation_id}:visit:{start}:{end}"
    else:
        start = end = None
        key = f"email:{ticket_row.correlation_id}:{kind.removeprefix('ticket_')}"
    if settings is None:
        thread = session.get(EmailThreadRow, ticket_row.correlation_id)
        settings = MailSettings.from_thread(thread) if thread is not None else MailSettings()
    content = Content(
        product_kind=ticket_row.product_kind,
        nickname=nickname,
        fault=ticket_row.fault,
        summary=ticket_row.summary,
        ticket_ref=ticket_reference(ticket_row.id),
        eta_ms=ticket_row.eta_ms,
        eta_lo_ms=ticket_row.eta_lo_ms,
        eta_hi_ms=ticket_row.eta_hi_ms,
        slot_start_ms=start,
        slot_end_ms=end,
    )
    return queue_email(
        session,
        key=key,
        kind=kind,
        customer=customer,
        correlation_id=ticket_row.correlation_id,
        content=content,
        now_ms=now_ms,
        settings=settings,
    )


def _device_and_customer(session: Session, device_id: str) -> tuple[str | None, CustomerRow] | None:
    found = session.execute(
        sa.select(DeviceRow.nickname, CustomerRow)
        .join(CustomerRow, DeviceRow.customer_id == CustomerRow.id)
        .where(DeviceRow.device_id == device_id)
    ).one_or_none()
    if found is None:
        return None
    return found[0], found[1]


def _thread(
    session: Session,
    correlation_id: str,
    customer_id: str,
    message_id: str,
    kind: str,
    now_ms: int,
    settings: MailSettings,
) -> EmailThreadRow:
    session.execute(
        _insert(session)(EmailThreadRow)
        .values(
            correlation_id=correlation_id,
            customer_id=customer_id,
            root_message_id=message_id,
            root_kind=kind,
            message_id_domain=settings.message_id_domain,
            policy=settings.policy_payload(),
            created_ms=now_ms,
        )
        .on_conflict_do_nothing(index_elements=["correlation_id"])
    )
    return session.scalars(
        sa.select(EmailThreadRow).where(EmailThreadRow.correlation_id == correlation_id)
    ).one()


def _scheduled_between(session: Session, customer_id: str, start_ms: int, end_ms: int) -> int:
    return int(
        session.scalar(
            sa.select(sa.func.count())
            .select_from(EmailRow)
            .where(
                EmailRow.customer_id == customer_id,
                EmailRow.category != SAFETY,
                EmailRow.status.in_(_COUNTED_STATUSES),
                EmailRow.scheduled_ms >= start_ms,
                EmailRow.scheduled_ms < end_ms,
            )
        )
        or 0
    )


def _insert(session: Session) -> Any:
    """The dialect's INSERT with ``ON CONFLICT`` for the session's database."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert
    if name == "sqlite":
        return sqlite.insert
    raise RejectedInput(f"unsupported database {name!r}")
