"""Read-only queries the API needs across the actions tables: filters and customer scope."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from cloud.actions.db import (
    CustomerRow,
    DeviceRow,
    EmailRow,
    OutboxRow,
    TicketEventRow,
    TicketRow,
    transaction,
)
from cloud.actions.records import Email, Ticket
from cloud.actions.service import OPEN_STATUSES
from cloud.errors import RejectedInput

MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class TicketFilter:
    status: tuple[str, ...] = ()
    device_id: str | None = None
    action: str | None = None
    priority: str | None = None
    customer_id: str | None = None  # only tickets of this customer's devices


@dataclass(frozen=True, slots=True)
class Owner:
    """A device's registration: who owns it and what they call it."""

    device_id: str
    customer_id: str | None
    customer_name: str | None
    nickname: str | None
    region: str | None


class ReadModel:
    def __init__(self, engine: Engine) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def owners(self, customer_id: str | None = None) -> dict[str, Owner]:
        """Registered devices by id, optionally of one customer only."""
        query = sa.select(DeviceRow, CustomerRow.name).outerjoin(
            CustomerRow, DeviceRow.customer_id == CustomerRow.id
        )
        if customer_id is not None:
            query = query.where(DeviceRow.customer_id == customer_id)
        with transaction(self._sessions) as session:
            return {
                row.device_id: Owner(row.device_id, row.customer_id, name, row.nickname, row.region)
                for row, name in session.execute(query)
            }

    def owner(self, device_id: str) -> Owner | None:
        with transaction(self._sessions) as session:
            found = session.execute(
                sa.select(DeviceRow, CustomerRow.name)
                .outerjoin(CustomerRow, DeviceRow.customer_id == CustomerRow.id)
                .where(DeviceRow.device_id == device_id)
            ).first()
        if found is None:
            return None
        row, name = found
        return Owner(row.device_id, row.customer_id, name, row.nickname, row.region)

    def open_severity(self) -> dict[str, str]:
        """The worst severity of each device's open tickets (devices with none are absent)."""
        rank = {"info": 0, "warning": 1, "critical": 2}
        query = sa.select(TicketRow.device_id, TicketRow.severity).where(
            TicketRow.status.in_(OPEN_STATUSES)
        )
        out: dict[str, str] = {}
        with transaction(self._sessions) as session:
            for device_id, severity in session.execute(query):
                if rank.get(severity, 0) >= rank.get(out.get(device_id, "info"), 0):
                    out[device_id] = severity
        return out

    def tickets(self, where: TicketFilter, limit: int = 50, offset: int = 0) -> list[Ticket]:
        """Newest first."""
        _page(limit, offset)
        query = _ticket_query(where).order_by(TicketRow.id.desc()).limit(limit).offset(offset)
        with transaction(self._sessions) as session:
            return [row.record() for row in session.scalars(query)]

    def count_tickets(self, where: TicketFilter) -> int:
        query = sa.select(sa.func.count()).select_from(_ticket_query(where).subquery())
        with transaction(self._sessions) as session:
            return int(session.scalar(query) or 0)

    def ticket_customer(self, ticket_id: int) -> tuple[bool, str | None]:
        """Whether the ticket exists, and the customer owning its device."""
        with transaction(self._sessions) as session:
            found = session.execute(
                sa.select(TicketRow.id, DeviceRow.customer_id)
                .outerjoin(DeviceRow, DeviceRow.device_id == TicketRow.device_id)
                .where(TicketRow.id == ticket_id)
            ).first()
        return (False, None) if found is None else (True, found[1])

    def emails(
        self, customer_id: str | None = None, status: str | None = None, *,
        limit: int = 50, offset: int = 0,
    ) -> list[Email]:  # fmt: skip
        """Newest first."""
        _page(limit, offset)
        query = sa.select(EmailRow).order_by(EmailRow.id.desc()).limit(limit).offset(offset)
        if customer_id is not None:
            query = query.where(EmailRow.customer_id == customer_id)
        if status is not None:
            query = query.where(EmailRow.status == status)
        with transaction(self._sessions) as session:
            return [row.record() for row in session.scalars(query)]

    def email(self, email_id: int) -> Email | None:
        with transaction(self._sessions) as session:
            row = session.get(EmailRow, email_id)
            return None if row is None else row.record()

    def email_payload(self, email: Email) -> dict[str, Any] | None:
        """What the outbox holds to render this email (its facts), if it is still there."""
        prefix = f"email:{email.correlation_id}:"
        query = sa.select(OutboxRow.payload).where(
            OutboxRow.kind == "email", OutboxRow.idempotency_key.startswith(prefix, autoescape=True)
        )
        with transaction(self._sessions) as session:
            for payload in session.scalars(query):
                if isinstance(payload, dict) and payload.get("message_id") == email.message_id:
                    return dict(payload)
        return None

    def ticket_fingerprint(self) -> tuple[int, int, int]:
        """Changes whenever a ticket opens or any ticket event is recorded."""
        with transaction(self._sessions) as session:
            events, last_event = session.execute(
                sa.select(sa.func.count(), sa.func.max(TicketEventRow.id))
            ).one()
            last_ticket = session.scalar(sa.select(sa.func.max(TicketRow.id)))
        return int(events or 0), int(last_event or 0), int(last_ticket or 0)


def _ticket_query(where: TicketFilter) -> sa.Select[TicketRow]:
    query = sa.select(TicketRow)
    if where.status:
        query = query.where(TicketRow.status.in_(where.status))
    if where.device_id is not None:
        query = query.where(TicketRow.device_id == where.device_id)
    if where.action is not None:
        query = query.where(TicketRow.action == where.action)
    if where.priority is not None:
        query = query.where(TicketRow.priority == where.priority)
    if where.customer_id is not None:
        owned = sa.select(DeviceRow.device_id).where(DeviceRow.customer_id == where.customer_id)
        query = query.where(TicketRow.device_id.in_(owned))
    return query


def _page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise RejectedInput(f"limit must be 1..{MAX_PAGE} and offset >= 0")
