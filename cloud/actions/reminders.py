"""Date-based reminders from customer data: vehicle insurance renewal, service interval.

A reminder is a date (``due_on``) and how many days before it to write (``lead_days``). Its send
time is that day at the brand's ``reminder_time`` in the customer's zone, precomputed as UTC
milliseconds so that ``due_reminders`` is one indexed query. Each occurrence is queued once:
the outbox key names the reminder and the date, and a repeating reminder then moves on to its
next date. An occurrence whose date passed while nothing ran is skipped, not sent late.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from cloud.actions.db import Base, CustomerRow, DeviceRow, transaction
from cloud.actions.email import Brand
from cloud.actions.mailer import Content, MailSettings, queue_email
from cloud.errors import RejectedInput

REMINDER_KINDS: Final = {"insurance_renewal": 30, "service_due": 14}  # kind → default lead days
MAX_LEAD_DAYS: Final = 366
_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class ReminderRow(Base):
    __tablename__ = "reminders"
    __table_args__ = (sa.Index("ix_reminders_due", "active", "send_after_ms"),)

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(sa.ForeignKey("customers.id"), index=True)
    device_id: Mapped[str | None] = mapped_column(sa.String(48))
    kind: Mapped[str] = mapped_column(sa.String(40))
    due_on: Mapped[str] = mapped_column(sa.String(10))  # ISO date of the next occurrence
    lead_days: Mapped[int] = mapped_column(sa.Integer)
    repeat_months: Mapped[int | None] = mapped_column(sa.Integer)
    send_after_ms: Mapped[int]
    last_queued_for: Mapped[str | None] = mapped_column(sa.String(10))
    active: Mapped[bool] = mapped_column(sa.Boolean)
    created_ms: Mapped[int]
    updated_ms: Mapped[int]


@dataclass(frozen=True, slots=True)
class Reminder:
    id: int
    customer_id: str
    device_id: str | None
    kind: str
    due_on: str
    lead_days: int
    repeat_months: int | None
    send_after_ms: int
    last_queued_for: str | None
    active: bool


class Reminders:
    """Register date-based reminders and queue the ones that are due."""

    def __init__(self, engine: Engine, brand: Brand, clock_ms: Callable[[], int]) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._settings = MailSettings.of(brand)
        self._clock_ms = clock_ms

    def add(
        self,
        customer_id: str,
        kind: str,
        due_on: date,
        *,
        device_id: str | None = None,
        lead_days: int | None = None,
        repeat_months: int | None = None,
    ) -> Reminder:
        """Remind ``lead_days`` before ``due_on`` (default per kind), every ``repeat_months``."""
        if kind not in REMINDER_KINDS:
            raise RejectedInput(f"reminder kind must be one of {', '.join(REMINDER_KINDS)}")
        lead = REMINDER_KINDS[kind] if lead_days is None else lead_days
        if not 0 <= lead <= MAX_LEAD_DAYS:
            raise RejectedInput(f"lead_days must be 0..{MAX_LEAD_DAYS}")
        if repeat_months is not None and not 1 <= repeat_months <= 120:
            raise RejectedInput("repeat_months must be 1..120")
        now = self._clock_ms()
        with transaction(self._sessions) as session:
            customer = session.get(CustomerRow, customer_id)
            if customer is None:
                raise RejectedInput(f"unknown customer {customer_id!r}")
            if device_id is not None:
                device = session.get(DeviceRow, device_id)
                if device is None or device.customer_id != customer_id:
                    raise RejectedInput(f"device {device_id!r} is not this customer's")
            row = ReminderRow(
                customer_id=customer_id,
                device_id=device_id,
                kind=kind,
                due_on=due_on.isoformat(),
                lead_days=lead,
                repeat_months=repeat_months,
                send_after_ms=self._send_after_ms(due_on, lead, customer.tz),
                last_queued_for=None,
                active=True,
                created_ms=now,
                updated_ms=now,
            )
            session.add(row)
            session.flush()
            return _record(row)

    def reminders(self, customer_id: str) -> list[Reminder]:
        with transaction(self._sessions) as session:
            rows = session.scalars(
                sa.select(ReminderRow)
                .where(ReminderRow.customer_id == customer_id)
                .order_by(ReminderRow.id)
            )
            return [_record(row) for row in rows]

    def due_reminders(self, now_ms: int, limit: int = 500) -> int:
        """Queue every reminder whose send time has come; returns how many emails were queued.

        Safe to call as often as wanted, from several workers: an occurrence is queued once.
        """
        queued = 0
        with transaction(self._sessions) as session:
            rows = session.scalars(
                sa.select(ReminderRow)
                .where(ReminderRow.active.is_(True), ReminderRow.send_after_ms <= now_ms)
                .order_by(ReminderRow.send_after_ms, ReminderRow.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                queued += self._queue(session, row, now_ms)
        return queued

    def _queue(self, session: Session, row: ReminderRow, now_ms: int) -> int:
        customer = session.get(CustomerRow, row.customer_id)
        if customer is None:
            row.active = False
            return 0
        zone = ZoneInfo(customer.tz)
        today = datetime.fromtimestamp(now_ms / 1000, tz=zone).date()
        queued = 0
        if row.last_queued_for != row.due_on and date.fromisoformat(row.due_on) >= today:
            nickname, product_kind = None, ""
            if row.device_id is not None:
                device = session.get(DeviceRow, row.device_id)
                if device is not None:
                    nickname, product_kind = device.nickname, device.product_kind
            outbox_id = queue_email(
                session,
                key=f"email:reminder:{row.id}:{row.due_on}",
                kind=row.kind,
                customer=customer,
                correlation_id=f"reminder-{row.id}",
                content=Content(product_kind=product_kind, nickname=nickname, due_on=row.due_on),
                now_ms=now_ms,
                settings=self._settings,
            )
            queued = int(outbox_id is not None)
        row.last_queued_for = row.due_on
        row.updated_ms = now_ms
        if row.repeat_months is None:
            row.active = False
        else:
            due = add_months(date.fromisoformat(row.due_on), row.repeat_months)
            row.due_on = due.isoformat()
            row.send_after_ms = self._send_after_ms(due, row.lead_days, customer.tz)
        return queued

    def _send_after_ms(self, due_on: date, lead_days: int, tz: str) -> int:
        day = due_on - timedelta(days=lead_days)
        local = datetime.combine(day, self._settings.policy.reminder_at, tzinfo=ZoneInfo(tz))
        return int(local.timestamp() * 1000)


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later, clamped to the month's end.

    >>> add_months(date(2026, 1, 31), 1), add_months(date(2026, 3, 15), 12)
    (datetime.date(2026, 2, 28), datetime.date(2027, 3, 15))
    """
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _record(row: ReminderRow) -> Reminder:
    return Reminder(
        id=row.id,
        customer_id=row.customer_id,
        device_id=row.device_id,
        kind=row.kind,
        due_on=row.due_on,
        lead_days=row.lead_days,
        repeat_months=row.repeat_months,
        send_after_ms=row.send_after_ms,
        last_queued_for=row.last_queued_for,
        active=row.active,
    )
