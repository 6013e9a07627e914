"""Customer email operations behind one object: consent, one-click unsubscribe, offers, previews."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from cloud.actions.consent import (
    CATEGORIES,
    KINDS,
    MARKETING,
    ConsentRow,
    TokenSubject,
    UnsubscribeTokens,
    category_of,
    kind_of,
    record_consent,
)
from cloud.actions.db import CustomerRow, DeviceRow, transaction
from cloud.actions.email import Brand, EmailFacts, EmailRenderer, RenderedEmail
from cloud.actions.email_locales import LANGUAGES
from cloud.actions.mailer import Content, MailSettings, queue_email
from cloud.errors import ConfigError, RejectedInput

logger = logging.getLogger(__name__)

MAX_CAMPAIGN_CHARS: Final = 40
MAX_SOURCE_CHARS: Final = 40
_PREVIEW_T_MS: Final = 1_773_133_200_000  # 2026-03-10T09:00:00Z: previews never read the clock
_DAY_MS: Final = 86_400_000


@dataclass(frozen=True, slots=True)
class Consent:
    """A customer's effective choice for one category (``source`` None: the class default)."""

    category: str
    message_class: str
    subscribed: bool
    source: str | None
    changed_ms: int | None


@dataclass(frozen=True, slots=True)
class UnsubscribeResult:
    category: str
    suppressed: int  # queued emails of the category that will now not be sent
    already: bool  # the customer had opted out before


class CustomerMail:
    """Consent per customer and category, one-click unsubscribe, marketing sends."""

    def __init__(
        self, engine: Engine, renderer: EmailRenderer, clock_ms: Callable[[], int]
    ) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self.renderer = renderer
        self._clock_ms = clock_ms

    @property
    def tokens(self) -> UnsubscribeTokens:
        if self.renderer.tokens is None:
            raise ConfigError("no unsubscribe token key configured for customer emails")
        return self.renderer.tokens

    def consents(self, customer_id: str) -> list[Consent]:
        with transaction(self._sessions) as session:
            if session.get(CustomerRow, customer_id) is None:
                raise RejectedInput(f"unknown customer {customer_id!r}")
            rows = {
                row.category: row
                for row in session.scalars(
                    sa.select(ConsentRow).where(ConsentRow.customer_id == customer_id)
                )
            }
        out = []
        for cat in CATEGORIES.values():
            row = rows.get(cat.name)
            default = cat.message_class != MARKETING
            out.append(
                Consent(
                    category=cat.name,
                    message_class=cat.message_class,
                    subscribed=default if row is None or not cat.unsubscribable else row.opted_in,
                    source=None if row is None else row.source,
                    changed_ms=None if row is None else row.changed_ms,
                )
            )
        return out

    def set_consent(
        self, customer_id: str, category: str, *, opted_in: bool, source: str = "api"
    ) -> int:
        """Record an opt-in or opt-out; returns how many queued emails an opt-out suppressed."""
        category_of(category)
        if not source or len(source) > MAX_SOURCE_CHARS or not source.isprintable():
            raise RejectedInput(f"consent source must be 1..{MAX_SOURCE_CHARS} printable chars")
        with transaction(self._sessions) as session:
            if session.get(CustomerRow, customer_id) is None:
                raise RejectedInput(f"unknown customer {customer_id!r}")
            return record_consent(
                session,
                customer_id,
                category,
                opted_in=opted_in,
                source=source,
                now_ms=self._clock_ms(),
            )

    def locale_of(self, customer_id: str) -> str:
        """The customer's locale (``en`` for an unknown customer)."""
        with transaction(self._sessions) as session:
            customer = session.get(CustomerRow, customer_id)
            return customer.locale if customer is not None else "en"

    def token_subject(self, token: str) -> TokenSubject:
        """Whom and what a token unsubscribes; ``RejectedInput`` for a bad or stale token."""
        subject = self.tokens.verify(token)
        category = CATEGORIES.get(subject.category)
        if category is None or not category.unsubscribable:
            raise RejectedInput("unsubscribe token names no category one can leave")
        with transaction(self._sessions) as session:
            if session.get(CustomerRow, subject.customer_id) is None:
                raise RejectedInput("unsubscribe token names no known customer")
        return subject

    def unsubscribe(self, token: str) -> UnsubscribeResult:
        """The one-click opt-out (RFC 8058): effective at once, idempotent."""
        subject = self.token_subject(token)
        with transaction(self._sessions) as session:
            row = session.get(ConsentRow, (subject.customer_id, subject.category))
            if row is not None and not row.opted_in:
                return UnsubscribeResult(subject.category, 0, already=True)
            suppressed = record_consent(
                session,
                subject.customer_id,
                subject.category,
                opted_in=False,
                source="one-click",
                now_ms=self._clock_ms(),
            )
        logger.info(
            "unsubscribe from %s: %d queued emails suppressed", subject.category, suppressed
        )
        return UnsubscribeResult(subject.category, suppressed, already=False)

    def queue_offer(self, campaign: str, customer_ids: Sequence[str], kind: str = "offer") -> int:
        """Queue a marketing email per customer who opted in; others are skipped silently.

        The campaign name is part of each email's key, so running a campaign twice sends once.
        """
        if kind_of(kind).category != "offers":
            raise RejectedInput(f"{kind!r} is not a marketing kind")
        if not campaign or len(campaign) > MAX_CAMPAIGN_CHARS or not campaign.isidentifier():
            raise RejectedInput("campaign must be an identifier of at most 40 characters")
        self.tokens  # noqa: B018 - marketing without an unsubscribe link is refused up front
        settings = MailSettings.of(self.renderer.brand)
        now = self._clock_ms()
        queued = 0
        with transaction(self._sessions) as session:
            for customer_id in dict.fromkeys(customer_ids):
                customer = session.get(CustomerRow, customer_id)
                if customer is None:
                    raise RejectedInput(f"unknown customer {customer_id!r}")
                device = session.scalars(
                    sa.select(DeviceRow)
                    .where(DeviceRow.customer_id == customer_id)
                    .order_by(DeviceRow.device_id)
                    .limit(1)
                ).first()
                content = Content(
                    product_kind=device.product_kind if device else "",
                    nickname=device.nickname if device else None,
                )
                outbox_id = queue_email(
                    session,
                    key=f"email:{kind}:{campaign}:{_pseudonym(customer_id)}",
                    kind=kind,
                    customer=customer,
                    correlation_id=f"campaign-{campaign}",
                    content=content,
                    now_ms=now,
                    settings=settings,
                )
                queued += outbox_id is not None
        return queued


def _pseudonym(customer_id: str) -> str:
    """Outbox keys show up in logs and operator views: they carry no customer id."""
    return hashlib.sha256(customer_id.encode("utf-8")).hexdigest()[:24]


# -- previews -----------------------------------------------------------------------------

_SAMPLE: Final = EmailFacts(
    kind="dispatch_opened",
    locale="en",
    tz="Europe/Berlin",
    to_name="Alex Example",
    to_addr="alex@example.org",
    nickname="Kitchen fridge",
    product_kind="fridge",
    fault="fridge.cooling",
    summary="The cabinet is warming up although the compressor runs.",
    ticket_ref="FW-000123",
    correlation_id="preview",
    message_id="<preview@forewarn.invalid>",
    eta_ms=_PREVIEW_T_MS + 3 * _DAY_MS,
    eta_lo_ms=_PREVIEW_T_MS + 2 * _DAY_MS,
    eta_hi_ms=_PREVIEW_T_MS + 4 * _DAY_MS,
    customer_id="preview",
)
_TYRES: Final = {
    "product_kind": "tyres",
    "nickname": "Family car",
    "fault": "tyres.pressure.fl",
    "details": (("unit", "fl"),),
}
_SAMPLE_CHANGES: Final[dict[str, dict[str, object]]] = {
    "dispatch_opened": {},
    "advice": {**_TYRES, "summary": "Front-left: slow leak"},
    "safety_alert": {**_TYRES, "summary": "Front-left: puncture", "eta_lo_ms": None},
    "visit_booked": {
        "slot_start_ms": _PREVIEW_T_MS + _DAY_MS,
        "slot_end_ms": _PREVIEW_T_MS + _DAY_MS + 2 * 3_600_000,
    },
    "ticket_resolved": {},
    "insurance_renewal": {**_TYRES, "ticket_ref": "", "due_on": "2026-04-01"},
    "service_due": {"ticket_ref": "", "due_on": "2026-04-01"},
    "offer": {"ticket_ref": ""},
}


def preview_kinds() -> list[dict[str, object]]:
    """Every kind with its category, class and the languages shipped."""
    return [
        {
            "kind": k.name,
            "category": k.category,
            "class": CATEGORIES[k.category].message_class,
            "threaded": k.threaded,
            "locales": list(LANGUAGES),
        }
        for k in KINDS.values()
    ]


def render_preview(
    kind: str, locale: str, brand: Brand, renderer: EmailRenderer | None = None
) -> RenderedEmail:
    """``kind`` rendered in ``locale`` with made-up sample data and the given brand."""
    kind_of(kind)
    if renderer is None or renderer.brand != brand:
        renderer = EmailRenderer(brand=brand)
    if renderer.tokens is None:  # a throwaway key: preview links must not unsubscribe anyone
        renderer = EmailRenderer(brand=brand, tokens=UnsubscribeTokens(secrets.token_bytes(32)))
    changes = _SAMPLE_CHANGES[kind]
    facts = replace(_SAMPLE, kind=kind, locale=locale, **changes)  # type: ignore[arg-type]
    return renderer.render(facts)
