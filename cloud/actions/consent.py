"""Who may be sent what: message classes, consent per category, unsubscribe tokens, send times.

Every email kind belongs to one category, and every category to one class:

- ``service`` class (``service``, ``reminders``): sent unless the customer opted out;
- ``marketing`` class (``offers``): sent only to customers who opted in;
- ``safety`` (critical safety, e.g. a tyre puncture): always sent, never capped or deferred.

An opt-out is recorded at once and, in the same transaction, every queued email of that
customer and category that no worker has claimed yet is marked ``suppressed`` (so a message
queued before the click is not sent after it). Unsubscribe tokens are signed (HMAC-SHA256,
128-bit tag) rather than stored: they need no table, cannot be guessed and stay valid.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from cloud.actions.db import Base, EmailRow, OutboxRow
from cloud.errors import ConfigError, RejectedInput

SERVICE: Final = "service"
MARKETING: Final = "marketing"
SAFETY: Final = "safety"
_SIGNED_PREFIX: Final = "v1"
_TAG_BYTES: Final = 16
_SEP: Final = "\x1f"
SECRET_BYTES: Final = 32


@dataclass(frozen=True, slots=True)
class Category:
    name: str
    message_class: str  # service | marketing | safety

    @property
    def unsubscribable(self) -> bool:
        return self.message_class != SAFETY


@dataclass(frozen=True, slots=True)
class MessageKind:
    """An email kind: its template name, its category, and whether it follows a ticket."""

    name: str
    category: str
    threaded: bool  # part of the root cause's conversation (ticket thread)

    @property
    def critical(self) -> bool:
        return CATEGORIES[self.category].message_class == SAFETY


CATEGORIES: Final = {
    c.name: c
    for c in (
        Category(SAFETY, SAFETY),
        Category("service", SERVICE),
        Category("reminders", SERVICE),
        Category("offers", MARKETING),
    )
}
KINDS: Final = {
    k.name: k
    for k in (
        MessageKind("dispatch_opened", "service", threaded=True),
        MessageKind("advice", "service", threaded=True),
        MessageKind("safety_alert", SAFETY, threaded=True),
        MessageKind("visit_booked", "service", threaded=True),
        MessageKind("ticket_resolved", "service", threaded=True),
        MessageKind("insurance_renewal", "reminders", threaded=False),
        MessageKind("service_due", "reminders", threaded=False),
        MessageKind("offer", "offers", threaded=False),
    )
}


def kind_of(name: str) -> MessageKind:
    try:
        return KINDS[name]
    except KeyError:
        raise RejectedInput(f"unknown email kind {name!r}; known: {', '.join(KINDS)}") from None


def category_of(name: str) -> Category:
    try:
        return CATEGORIES[name]
    except KeyError:
        known = ", ".join(CATEGORIES)
        raise RejectedInput(f"unknown email category {name!r}; known: {known}") from None


class ConsentRow(Base):
    """A customer's latest choice for one category; absent means the class default."""

    __tablename__ = "email_consents"

    customer_id: Mapped[str] = mapped_column(sa.ForeignKey("customers.id"), primary_key=True)
    category: Mapped[str] = mapped_column(sa.String(24), primary_key=True)
    opted_in: Mapped[bool]
    source: Mapped[str] = mapped_column(sa.String(40))  # e.g. one-click, signup-form, api
    changed_ms: Mapped[int]


def may_send(session: Session, customer_id: str, category: str) -> bool:
    """Whether a message of ``category`` may go to the customer now."""
    cat = category_of(category)
    if cat.message_class == SAFETY:
        return True
    opted_in = session.scalar(
        sa.select(ConsentRow.opted_in).where(
            ConsentRow.customer_id == customer_id, ConsentRow.category == category
        )
    )
    if cat.message_class == MARKETING:
        return opted_in is True
    return opted_in is not False


def record_consent(
    session: Session,
    customer_id: str,
    category: str,
    *,
    opted_in: bool,
    source: str,
    now_ms: int,
) -> int:
    """Store a choice; an opt-out suppresses unclaimed queued emails. Returns how many."""
    cat = category_of(category)
    if not cat.unsubscribable and not opted_in:
        raise RejectedInput(f"category {category!r} carries safety notices and cannot be refused")
    row = session.get(ConsentRow, (customer_id, category), with_for_update=True)
    if row is None:
        session.add(
            ConsentRow(
                customer_id=customer_id,
                category=category,
                opted_in=opted_in,
                source=source,
                changed_ms=now_ms,
            )
        )
    else:
        row.opted_in, row.source, row.changed_ms = opted_in, source, now_ms
    session.flush()
    return 0 if opted_in else suppress_queued(session, customer_id, category)


def suppress_queued(session: Session, customer_id: str, category: str) -> int:
    """Mark queued, unclaimed emails of one customer and category as ``suppressed``."""
    keys = session.scalars(
        sa.select(EmailRow.outbox_key).where(
            EmailRow.customer_id == customer_id,
            EmailRow.category == category,
            EmailRow.status == "queued",
            EmailRow.outbox_key.is_not(None),
        )
    ).all()
    if not keys:
        return 0
    # Rows a worker claimed already ("sending") are in flight and stay as they are.
    suppressed = session.scalars(
        sa.update(OutboxRow)
        .where(OutboxRow.idempotency_key.in_(keys), OutboxRow.state == "pending")
        .values(state="suppressed", last_error=f"suppressed: opted out of {category}")
        .returning(OutboxRow.idempotency_key)
    ).all()
    if suppressed:
        session.execute(
            sa.update(EmailRow)
            .where(EmailRow.outbox_key.in_(suppressed))
            .values(status="suppressed")
        )
    return len(suppressed)


# -- unsubscribe tokens -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenSubject:
    customer_id: str
    category: str


class UnsubscribeTokens:
    """Sign and verify ``customer + category`` tokens for ``/u/{token}`` links.

    >>> tokens = UnsubscribeTokens(b"k" * 32)
    >>> tokens.verify(tokens.sign("c-1", "offers"))
    TokenSubject(customer_id='c-1', category='offers')
    """

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ConfigError("the unsubscribe token secret must be at least 16 bytes")
        # Domain separation: the same deployment secret may sign other things too.
        self._key = hmac.new(secret, b"forewarn unsubscribe token v1", hashlib.sha256).digest()

    def sign(self, customer_id: str, category: str) -> str:
        body = _b64(f"{customer_id}{_SEP}{category}".encode())
        return f"{_SIGNED_PREFIX}.{body}.{_b64(self._tag(body))}"

    def verify(self, token: str) -> TokenSubject:
        """The token's subject, or ``RejectedInput`` for anything not signed by this key."""
        parts = token.split(".")
        if len(token) > 600 or len(parts) != 3 or parts[0] != _SIGNED_PREFIX:
            raise RejectedInput("unsubscribe token is malformed")
        try:
            tag = _unb64(parts[2])
            text = _unb64(parts[1]).decode("utf-8")
        except (binascii.Error, ValueError) as exc:
            raise RejectedInput("unsubscribe token is malformed") from exc
        if not hmac.compare_digest(tag, self._tag(parts[1])):
            raise RejectedInput("unsubscribe token is not valid")
        customer_id, _, category = text.partition(_SEP)
        return TokenSubject(customer_id, category)

    def _tag(self, body: str) -> bytes:
        return hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest()[:_TAG_BYTES]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_or_create_secret(path: Path) -> bytes:
    """A random key kept in ``path`` (mode 0600), created on first use.

    For a single machine without ``FOREWARN_SECRET_KEY``; several workers must share the key.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret(path)
    except OSError as exc:
        raise ConfigError(f"cannot create the token key {path}: {exc}") from exc
    secret = secrets.token_bytes(SECRET_BYTES)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secret)
    return secret


def _read_secret(path: Path) -> bytes:
    try:
        secret = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the token key {path}: {exc}") from exc
    if len(secret) < SECRET_BYTES:
        raise ConfigError(f"token key {path} is shorter than {SECRET_BYTES} bytes")
    return secret


# -- when to send -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendPolicy:
    """Frequency cap and quiet hours, both in the customer's local time.

    Quiet hours run from ``quiet_from`` to ``quiet_until`` and may span midnight; equal
    times mean none. A message due in quiet hours waits for their end; one that would exceed
    ``daily_cap`` (service and marketing together) waits for the next day with room.
    The defaults restrict nothing; the shipped brand folder sets 21:00-08:00 and 3 a day.
    """

    daily_cap: int | None = None  # None: no cap
    quiet_from: time = time(0, 0)
    quiet_until: time = time(0, 0)
    reminder_at: time = time(9, 0)  # local time of day date-based reminders go out

    def __post_init__(self) -> None:
        if self.daily_cap is not None and self.daily_cap < 1:
            raise ConfigError("daily_cap must be at least 1")

    def in_quiet_hours(self, local: datetime) -> bool:
        t = local.timetz().replace(tzinfo=None)
        if self.quiet_from == self.quiet_until:
            return False
        if self.quiet_from < self.quiet_until:
            return self.quiet_from <= t < self.quiet_until
        return t >= self.quiet_from or t < self.quiet_until

    def leave_quiet_hours(self, ts_ms: int, zone: ZoneInfo) -> int:
        """``ts_ms``, or the end of the quiet hours it falls in.

        >>> policy = SendPolicy(quiet_from=time(21), quiet_until=time(8))
        >>> berlin = ZoneInfo("Europe/Berlin")
        >>> at_23h = 1_767_304_800_000  # 2026-01-01 23:00 in Berlin
        >>> datetime.fromtimestamp(policy.leave_quiet_hours(at_23h, berlin) / 1000, berlin)
        datetime.datetime(2026, 1, 2, 8, 0, tzinfo=zoneinfo.ZoneInfo(key='Europe/Berlin'))
        """
        local = _local(ts_ms, zone)
        if not self.in_quiet_hours(local):
            return ts_ms
        day = local.date()
        if local.timetz().replace(tzinfo=None) >= self.quiet_until:
            day += timedelta(days=1)
        end = datetime.combine(day, self.quiet_until, tzinfo=zone)
        return int(end.timestamp() * 1000)

    def schedule(self, now_ms: int, zone: ZoneInfo, count_on_day: Callable[[int, int], int]) -> int:
        """The first time at or after ``now_ms`` outside quiet hours on a day under the cap.

        ``count_on_day(start_ms, end_ms)`` counts the customer's messages already scheduled
        in that local day.
        """
        at_ms = self.leave_quiet_hours(now_ms, zone)
        if self.daily_cap is None:
            return at_ms
        for _ in range(366):
            start_ms, end_ms = local_day_bounds(at_ms, zone)
            if count_on_day(start_ms, end_ms) < self.daily_cap:
                return at_ms
            at_ms = self.leave_quiet_hours(end_ms, zone)
        raise RejectedInput("no day with room under the frequency cap within a year")


def local_day_bounds(ts_ms: int, zone: ZoneInfo) -> tuple[int, int]:
    """UTC milliseconds of the local midnight before ``ts_ms`` and the next one."""
    day = _local(ts_ms, zone).date()
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def _local(ts_ms: int, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).astimezone(zone)
