"""Outgoing webhooks: subscriptions, HMAC-SHA256 signed bodies, delivered through the outbox.

Every ticket event is offered to the active subscriptions that want it. The body is serialised
once, in the transaction that records the event, and queued in the outbox under the key
``webhook:{subscription}:event:{ticket event id}``; the relay posts it with::

    Content-Type: application/json
    Idempotency-Key: webhook:3:event:118        the same on every attempt: deduplicate on it
    Forewarn-Event: ticket.status_changed
    Forewarn-Timestamp: 1767225600              unix seconds of this attempt
    Forewarn-Signature: v1=<hex HMAC-SHA256(secret, "{timestamp}." + body)>

A receiver verifies the signature over the raw body (``verify_signature`` is the recipe), refuses
timestamps older than a few minutes, and stores the idempotency key with its effect, so that
the at-least-once attempts of the relay become exactly-once effects.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.actions.db import InsertFn, OutboxRow, WebhookRow, transaction
from cloud.actions.records import Webhook
from cloud.errors import RejectedInput, TransientError

logger = logging.getLogger(__name__)

EVENTS: Final = (
    "ticket.opened",
    "ticket.evidence",
    "ticket.status_changed",
    "ticket.acknowledged",
    "ticket.reminder",
    "ticket.escalated",
    "ticket.sla_breached",
)
ALL_EVENTS: Final = "*"
SIGNATURE_HEADER: Final = "Forewarn-Signature"
TIMESTAMP_HEADER: Final = "Forewarn-Timestamp"
EVENT_HEADER: Final = "Forewarn-Event"
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
SIGNATURE_TOLERANCE_S: Final = 300
_SUBSCRIPTIONS_KEY: Final = "forewarn.webhook_subscriptions"
MAX_URL_CHARS: Final = 2000
MIN_SECRET_CHARS: Final = 16
# Worth another attempt: the receiver is busy, overloaded or restarting.
_RETRY_STATUSES: Final = frozenset({408, 425, 429, 500, 502, 503, 504})


def sign(secret: str, timestamp_s: int, body: bytes) -> str:
    """The ``Forewarn-Signature`` header value for ``body`` sent at ``timestamp_s``.

    >>> sign("s3cr3t-s3cr3t-s3cr3t", 1767225600, b'{"a":1}')[:10]
    'v1=7dd69e1'
    """
    mac = hmac.new(secret.encode(), str(timestamp_s).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify_signature(
    secret: str,
    body: bytes,
    timestamp_header: str,
    signature_header: str,
    now_s: int,
    tolerance_s: int = SIGNATURE_TOLERANCE_S,
) -> bool:
    """The receiver's check: a fresh timestamp and a matching HMAC, compared in constant time.

    >>> body = b'{"event":"ticket.opened"}'
    >>> header = sign("s3cr3t-s3cr3t-s3cr3t", 100, body)
    >>> verify_signature("s3cr3t-s3cr3t-s3cr3t", body, "100", header, now_s=130)
    True
    >>> verify_signature("s3cr3t-s3cr3t-s3cr3t", body + b" ", "100", header, now_s=130)
    False
    >>> verify_signature("s3cr3t-s3cr3t-s3cr3t", body, "100", header, now_s=100 + 3600)
    False
    """
    try:
        timestamp_s = int(timestamp_header)
    except ValueError:
        return False
    if abs(now_s - timestamp_s) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp_s, body), signature_header)


def event_name(kind: str) -> str:
    """The webhook event of a ticket event kind (``status`` → ``ticket.status_changed``)."""
    return "ticket.status_changed" if kind == "status" else f"ticket.{kind}"


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if len(url) > MAX_URL_CHARS or any(ord(ch) < 33 or ord(ch) == 127 for ch in url):
        raise RejectedInput(f"webhook URL must be at most {MAX_URL_CHARS} printable characters")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RejectedInput(f"webhook URL {url!r} must look like https://host/path")
    if parts.username or parts.password:
        raise RejectedInput("webhook URL must not carry credentials: the signature authenticates")
    return url


def check_events(events: Sequence[str]) -> list[str]:
    chosen = list(dict.fromkeys(events))
    if not chosen:
        raise RejectedInput(f"choose at least one event of {', '.join(EVENTS)} or '*'")
    unknown = [e for e in chosen if e != ALL_EVENTS and e not in EVENTS]
    if unknown:
        raise RejectedInput(f"unknown webhook events {unknown}: use {', '.join(EVENTS)} or '*'")
    return chosen


def _record(row: WebhookRow, secret: str | None = None) -> Webhook:
    return Webhook(
        id=row.id,
        url=row.url,
        events=tuple(row.events),
        description=row.description,
        active=row.active,
        created_ms=row.created_ms,
        secret=secret,
    )


class WebhookRegistry:
    """Subscriptions: who wants which ticket events, and the secret their bodies are signed with."""

    def __init__(self, sessions: sessionmaker[Session], clock_ms: Callable[[], int]) -> None:
        self._sessions = sessions
        self._clock_ms = clock_ms

    def add(
        self,
        url: str,
        events: Sequence[str] = (ALL_EVENTS,),
        *,
        secret: str | None = None,
        description: str = "",
    ) -> Webhook:
        """Subscribe ``url``; returns the subscription with its secret (shown this once).

        Without ``secret`` a random one is made. Only events recorded after this call are sent.
        """
        check_url(url)
        chosen = check_events(events)
        if secret is None:
            secret = secrets.token_urlsafe(32)
        elif len(secret) < MIN_SECRET_CHARS or len(secret) > 200:
            raise RejectedInput(f"webhook secret must be {MIN_SECRET_CHARS}..200 characters")
        if len(description) > 200:
            raise RejectedInput("webhook description is longer than 200 characters")
        row = WebhookRow(
            url=url,
            secret=secret,
            events=chosen,
            description=description,
            active=True,
            created_ms=self._clock_ms(),
        )
        with transaction(self._sessions) as session:
            session.add(row)
            session.flush()
            return _record(row, secret)

    def list(self) -> list[Webhook]:
        with transaction(self._sessions) as session:
            rows = session.scalars(sa.select(WebhookRow).order_by(WebhookRow.id))
            return [_record(row) for row in rows]

    def rotate_secret(self, webhook_id: int, secret: str | None = None) -> Webhook | None:
        """A new signing secret (shown this once); calls not yet sent are signed with it."""
        if secret is None:
            secret = secrets.token_urlsafe(32)
        elif not MIN_SECRET_CHARS <= len(secret) <= 200:
            raise RejectedInput(f"webhook secret must be {MIN_SECRET_CHARS}..200 characters")
        with transaction(self._sessions) as session:
            row = session.get(WebhookRow, webhook_id, with_for_update=True)
            if row is None:
                return None
            row.secret = secret
            return _record(row, secret)

    def set_active(self, webhook_id: int, active: bool) -> bool:
        """Pause or resume a subscription; ``False`` if there is none with this id.

        Items already queued for a paused subscription are parked when their turn comes.
        """
        with transaction(self._sessions) as session:
            row = session.get(WebhookRow, webhook_id, with_for_update=True)
            if row is None:
                return False
            row.active = active
            return True


def queue_event(
    session: Session,
    insert: InsertFn,
    *,
    event_id: int,
    kind: str,
    ts_ms: int,
    actor: str,
    detail: Mapping[str, Any],
    ticket: Mapping[str, Any],
) -> int:
    """Queue one ticket event for every subscription that wants it; returns how many."""
    name = event_name(kind)
    # One look-up per transaction: an apply records several events per ticket.
    subscriptions = session.info.get(_SUBSCRIPTIONS_KEY)
    if subscriptions is None:
        subscriptions = session.scalars(
            sa.select(WebhookRow).where(WebhookRow.active.is_(True)).order_by(WebhookRow.id)
        ).all()
        session.info[_SUBSCRIPTIONS_KEY] = subscriptions
    queued = 0
    for sub in subscriptions:
        if ALL_EVENTS not in sub.events and name not in sub.events:
            continue
        key = f"webhook:{sub.id}:event:{event_id}"
        body = {
            "id": key,
            "event": name,
            "ts_ms": ts_ms,
            "actor": actor,
            "change": dict(detail),
            "ticket": dict(ticket),
        }
        payload = {
            "subscription_id": sub.id,
            "event": name,
            "body": json.dumps(body, sort_keys=True, separators=(",", ":")),
        }
        inserted = session.execute(
            insert(OutboxRow)
            .values(
                idempotency_key=key,
                kind="webhook",
                payload=payload,
                state="pending",
                attempts=0,
                claims=0,
                next_attempt_ms=ts_ms,
                created_ms=ts_ms,
            )
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(OutboxRow.id)
        ).scalar_one_or_none()
        queued += inserted is not None
    return queued


class HttpPoster(Protocol):
    """Port of the HTTP client: returns the status code, raises ``TransientError`` when the
    receiver could not be reached or did not answer in time."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int: ...


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirected POST would lose its body: report the 3xx instead


class UrllibPoster:
    """Standard-library HTTP client: no redirects, a timeout per attempt."""

    def __init__(self, timeout_s: float = 10.0) -> None:
        self._timeout_s = timeout_s
        self._opener = urllib.request.build_opener(_NoRedirect())

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        check_url(url)  # only http(s) reaches urllib, whatever the database holds
        request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")  # noqa: S310
        try:
            with self._opener.open(request, timeout=self._timeout_s) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except (urllib.error.URLError, OSError) as exc:
            raise TransientError(f"webhook receiver unreachable: {exc}") from exc


class WebhookDelivery:
    """Posts one queued webhook; the outbox relay decides about retries and parking."""

    def __init__(
        self, sessions: sessionmaker[Session], poster: HttpPoster, clock_ms: Callable[[], int]
    ) -> None:
        self._sessions = sessions
        self._poster = poster
        self._clock_ms = clock_ms

    def deliver(self, idempotency_key: str, payload: Mapping[str, Any]) -> None:
        """Raise ``TransientError`` to retry later, ``RejectedInput`` to park."""
        with transaction(self._sessions) as session:
            sub = session.get(WebhookRow, int(payload.get("subscription_id", 0)))
            target = None if sub is None or not sub.active else (sub.url, sub.secret)
        if target is None:
            raise RejectedInput(f"subscription {payload.get('subscription_id')} removed or paused")
        url, secret = target
        body = str(payload["body"]).encode()
        timestamp_s = self._clock_ms() // 1000
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "forewarn-webhooks/1",
            IDEMPOTENCY_HEADER: idempotency_key,
            EVENT_HEADER: str(payload.get("event", "")),
            TIMESTAMP_HEADER: str(timestamp_s),
            SIGNATURE_HEADER: sign(secret, timestamp_s, body),
        }
        status = self._poster.post(url, body, headers)
        if 200 <= status < 300:
            return
        if status in _RETRY_STATUSES:
            raise TransientError(f"webhook receiver answered HTTP {status}")
        raise RejectedInput(f"webhook receiver refused with HTTP {status}")
