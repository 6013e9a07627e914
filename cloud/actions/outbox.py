"""The outbox relay: deliver queued emails and webhooks once, retry with backoff, park the hopeless.

Each item goes through three short transactions::

    claim    pending → sending, attempts + 1, next_attempt_ms = now + claim_ms   (committed)
    send     render, build, hand to the sender                 (no transaction held open)
    record   sending → sent | pending (backoff) | parked, guarded by the claim number

On PostgreSQL the claim is ``SELECT ... FOR UPDATE SKIP LOCKED``, so concurrent workers never take
the same row; SQLite runs every transaction ``BEGIN IMMEDIATE`` and so serialises them.

Why no email goes out twice: SMTP servers deduplicate nothing, so the only way to send twice is
to send again after an attempt whose outcome is unknown. That happens in exactly one window:
the server accepted the message, and the worker died (or lost the database) before *record*
committed. The window is kept to one commit: rendering happens before the connection opens,
and each item is recorded right after its own send, never at the end of a batch. A row still
``sending`` once its claim expired is therefore *in doubt*; the relay parks it with a note
instead of sending it again, trading a rare email that needs a human look for a guarantee of
no duplicate. The same holds when the SMTP connection breaks after the body was sent
(``MailOutcomeUnknown``), and for an unexpected error, which propagates and leaves the row
``sending``. An operator who checked the mailbox can ``requeue`` the item; the
copy then carries the same ``Message-ID``, which mail programs treat as the same message.

Webhooks differ in one point: every attempt carries the item's idempotency key in the
``Idempotency-Key`` header, and receivers deduplicate on it. An attempt in doubt (the claim
expired, the connection broke after the request was sent) is therefore retried, not parked;
only repeated failures and refusals (a 4xx answer, a removed subscription) park a webhook.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.actions.consent import may_send, suppress_queued
from cloud.actions.db import EmailRow, OutboxRow, transaction
from cloud.actions.email import EmailFacts, EmailRenderer, build_message
from cloud.actions.records import DeliveryResult, OutboxItem
from cloud.actions.senders import EmailSender, MailOutcomeUnknown
from cloud.actions.webhooks import WebhookDelivery
from cloud.errors import RejectedInput, RenderError, TransientError

logger = logging.getLogger(__name__)

MAX_ERROR_CHARS: Final = 2000


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a failing email or webhook is retried.

    With the defaults an item is tried 8 times over about an hour (30 s, 1, 2, 4 ... 32 min)
    before it is parked. ``claim_ms`` must exceed the longest send (SMTP timeout) by a margin.
    """

    max_attempts: int = 8
    backoff_base_ms: int = 30_000
    backoff_cap_ms: int = 3_600_000
    claim_ms: int = 600_000

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.backoff_base_ms < 1 or self.claim_ms < 1:
            raise ValueError("max_attempts, backoff_base_ms and claim_ms must be positive")

    def backoff_ms(self, attempts: int) -> int:
        """Delay after the ``attempts``-th failed attempt.

        >>> [RetryPolicy().backoff_ms(n) // 1000 for n in (1, 2, 3, 8, 20)]
        [30, 60, 120, 3600, 3600]
        """
        return int(min(self.backoff_base_ms * 2 ** min(attempts - 1, 40), self.backoff_cap_ms))


@dataclass(frozen=True, slots=True)
class _Claim:
    id: int
    kind: str
    idempotency_key: str
    claims: int
    attempts: int
    payload: dict[str, Any]
    created_ms: int

    @property
    def message_id(self) -> str:
        return str(self.payload.get("message_id", ""))


@dataclass(frozen=True, slots=True)
class _Outcome:
    state: str  # sent | pending | parked
    error: str | None = None
    subject: str | None = None


class OutboxRelay:
    """Moves due outbox rows to the sender; used by ``ActionService.deliver_pending``."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        renderer: EmailRenderer,
        sender: EmailSender,
        clock_ms: Callable[[], int],
        retry: RetryPolicy,
        webhooks: WebhookDelivery | None = None,
    ) -> None:
        self._sessions = sessions
        self._renderer = renderer
        self._sender = sender
        self._clock_ms = clock_ms
        self._retry = retry
        self._webhooks = webhooks

    def deliver_pending(self, limit: int = 100) -> DeliveryResult:
        parked = self._park_in_doubt()
        sent = failed = 0
        for _ in range(limit):
            claim = self._claim()
            if claim is None:
                break
            outcome = self._attempt(claim)
            self._record(claim, outcome)
            sent += outcome.state == "sent"
            failed += outcome.state == "pending"
            parked += outcome.state == "parked"
        return DeliveryResult(sent=sent, failed=failed, parked=parked)

    def items(self, state: str | None, limit: int, offset: int) -> list[OutboxItem]:
        """Oldest first, optionally only one state."""
        query = sa.select(OutboxRow).order_by(OutboxRow.id).limit(limit).offset(offset)
        if state is not None:
            query = query.where(OutboxRow.state == state)
        with transaction(self._sessions) as session:
            return [row.record() for row in session.scalars(query)]

    def requeue(self, outbox_id: int) -> bool:
        """Give a parked item a fresh set of attempts; ``False`` if it is not parked."""
        with transaction(self._sessions) as session:
            row = session.get(OutboxRow, outbox_id, with_for_update=True)
            if row is None or row.state != "parked":
                return False
            row.state, row.attempts, row.next_attempt_ms = "pending", 0, self._clock_ms()
            if row.kind == "email":
                _set_email(session, row.payload.get("message_id"), status="queued")
                # An opt-out made while the email was parked still holds.
                email_row = session.scalar(
                    sa.select(EmailRow).where(EmailRow.outbox_key == row.idempotency_key)
                )
                if email_row is not None and email_row.customer_id is not None:
                    session.flush()
                    if not may_send(session, email_row.customer_id, email_row.category):
                        suppress_queued(session, email_row.customer_id, email_row.category)
            return True

    def _park_in_doubt(self) -> int:
        now = self._clock_ms()
        with transaction(self._sessions) as session:
            rows = session.scalars(
                sa.select(OutboxRow)
                .where(OutboxRow.state == "sending", OutboxRow.next_attempt_ms <= now)
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                if row.kind == "webhook" and row.attempts < self._retry.max_attempts:
                    # Safe to send again: the receiver deduplicates on the idempotency key.
                    row.state, row.next_attempt_ms = "pending", now
                    row.last_error = f"attempt {row.attempts} never recorded; sending again"
                    continue
                row.state = "parked"
                row.last_error = (
                    f"in doubt: attempt {row.attempts} was claimed but its outcome never "
                    "recorded (worker stopped); it may have been sent. Check the mailbox, "
                    "then requeue or leave it."
                    if row.kind == "email"
                    else f"gave up after {row.attempts} attempts whose outcome was never recorded"
                )
                if row.kind == "email":
                    _set_email(session, row.payload.get("message_id"), status="parked")
                logger.warning("outbox item %s parked in doubt", row.idempotency_key)
            return sum(row.state == "parked" for row in rows)

    def _claim(self) -> _Claim | None:
        now = self._clock_ms()
        with transaction(self._sessions) as session:
            row = session.scalars(
                sa.select(OutboxRow)
                .where(OutboxRow.state == "pending", OutboxRow.next_attempt_ms <= now)
                .order_by(OutboxRow.next_attempt_ms, OutboxRow.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return None
            row.state = "sending"
            row.claims += 1
            row.attempts += 1
            row.next_attempt_ms = now + self._retry.claim_ms
            return _Claim(
                row.id,
                row.kind,
                row.idempotency_key,
                row.claims,
                row.attempts,
                dict(row.payload),
                row.created_ms,
            )

    def _attempt(self, claim: _Claim) -> _Outcome:
        if claim.kind == "webhook":
            return self._attempt_webhook(claim)
        try:
            facts = EmailFacts.from_payload(claim.payload)
            rendered = self._renderer.render(facts)
            msg = build_message(
                brand=self._renderer.brand,
                to_name=facts.to_name,
                to_addr=facts.to_addr,
                rendered=rendered,
                message_id=facts.message_id,
                correlation_id=facts.correlation_id,
                date_ms=claim.created_ms,
            )
        except (RenderError, RejectedInput) as exc:
            return _Outcome("parked", f"cannot build the message: {exc}")
        try:
            self._sender.send(msg)
        except MailOutcomeUnknown as exc:
            return _Outcome("parked", f"in doubt: {exc}", rendered.subject)
        except TransientError as exc:
            if claim.attempts >= self._retry.max_attempts:
                return _Outcome("parked", f"gave up after {claim.attempts} attempts: {exc}")
            return _Outcome("pending", str(exc), rendered.subject)
        except RejectedInput as exc:
            return _Outcome("parked", f"refused: {exc}", rendered.subject)
        return _Outcome("sent", None, rendered.subject)

    def _attempt_webhook(self, claim: _Claim) -> _Outcome:
        if self._webhooks is None:
            return _Outcome("pending", "no webhook client configured in this worker")
        try:
            self._webhooks.deliver(claim.idempotency_key, claim.payload)
        except TransientError as exc:
            if claim.attempts >= self._retry.max_attempts:
                return _Outcome("parked", f"gave up after {claim.attempts} attempts: {exc}")
            return _Outcome("pending", str(exc))
        except RejectedInput as exc:
            return _Outcome("parked", f"refused: {exc}")
        return _Outcome("sent")

    def _record(self, claim: _Claim, outcome: _Outcome) -> None:
        now = self._clock_ms()
        error = outcome.error[:MAX_ERROR_CHARS] if outcome.error is not None else None
        values: dict[str, Any] = {"state": outcome.state, "last_error": error}
        if outcome.state == "sent":
            values["sent_ms"] = now
        elif outcome.state == "pending":
            values["next_attempt_ms"] = now + self._retry.backoff_ms(claim.attempts)
        with transaction(self._sessions) as session:
            # The claim number fences off a worker whose claim expired and was taken over.
            result = session.execute(
                sa.update(OutboxRow)
                .where(
                    OutboxRow.id == claim.id,
                    OutboxRow.claims == claim.claims,
                    OutboxRow.state.in_(("sending", "parked")),
                )
                .values(**values)
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                logger.warning("outbox item %s changed hands; outcome %s", claim.id, outcome.state)
                return
            if claim.kind != "email":
                return
            email_status = {"sent": "sent", "parked": "parked"}.get(outcome.state, "queued")
            _set_email(
                session,
                claim.message_id,
                status=email_status,
                subject=outcome.subject,
                sent_ms=now if outcome.state == "sent" else None,
            )


def _set_email(
    session: Session,
    message_id: object,
    *,
    status: str,
    subject: str | None = None,
    sent_ms: int | None = None,
) -> None:
    values: dict[str, Any] = {"status": status}
    if subject is not None:
        values["subject"] = subject
    if sent_ms is not None:
        values["sent_ms"] = sent_ms
    session.execute(
        sa.update(EmailRow).where(EmailRow.message_id == str(message_id)).values(values)
    )
