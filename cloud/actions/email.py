"""Customer emails: jinja2 templates per message kind and locale, and the MIME message around them.

Templates live in ``templates/email/`` as ``{kind}.{locale}.subject``, ``.txt`` and ``.html``;
a locale without its own file falls back to its language (``de-CH`` → ``de``), then to ``en``.
HTML is autoescaped, text and subject are not (they are never interpreted as markup), and a
variable a template needs but the context lacks raises ``RenderError`` instead of rendering an
empty string.

Header values are refused, not cleaned, when they carry CR or LF: ``UnsafeHeaderValue`` is a
``RejectedInput``, so the outbox parks such a message for a human instead of retrying it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2

from cloud.errors import RejectedInput, RenderError

TEMPLATE_DIR: Final = Path(__file__).resolve().parent / "templates" / "email"
DEFAULT_LOCALE: Final = "en"
_KIND_RE: Final = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_MESSAGE_ID_RE: Final = re.compile(r"^<[^<>\s@]+@[^<>\s@]+>$")

_WEEKDAYS: Final = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_MONTHS: Final = {
    "en": (
        "January", "February", "March", "April", "May", "June", "July",
        "August", "September", "October", "November", "December",
    ),
}  # fmt: skip
_PRODUCT_LABELS: Final = {
    "en": {"fridge": "fridge", "vending": "vending machine", "tyres": "vehicle"},
}
_TYRE_LABELS: Final = {
    "en": {"fl": "front-left tyre", "fr": "front-right tyre", "rl": "rear-left tyre",
           "rr": "rear-right tyre"},
}  # fmt: skip


class UnsafeHeaderValue(RejectedInput):
    """A header value with CR/LF or an unusable address: it could forge headers, refused."""


@dataclass(frozen=True, slots=True)
class Brand:
    """Who the emails come from.

    ``message_id_domain`` is the right-hand side of every ``Message-ID``; set it to a domain the
    sender controls (the ``.invalid`` default is only safe for tests and demos).
    """

    name: str = "forewarn service"
    from_addr: str = "service@forewarn.invalid"
    message_id_domain: str = "forewarn.invalid"


@dataclass(frozen=True, slots=True)
class EmailFacts:
    """Everything an email says, frozen when the ticket opened and kept in the outbox payload."""

    kind: str  # template name, e.g. "dispatch_opened"
    locale: str
    tz: str  # the customer's IANA time zone
    to_name: str
    to_addr: str
    nickname: str | None
    product_kind: str
    fault: str
    summary: str
    ticket_ref: str
    correlation_id: str
    message_id: str
    eta_ms: int | None = None
    eta_lo_ms: int | None = None
    eta_hi_ms: int | None = None
    details: tuple[tuple[str, str], ...] = field(default=())

    def to_payload(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["details"] = [list(pair) for pair in self.details]
        return payload

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> EmailFacts:
        try:
            values = dict(payload)
            values["details"] = tuple((str(k), str(v)) for k, v in values.get("details", ()))
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise RenderError(f"outbox payload is not an email: {exc}") from exc


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


class EmailRenderer:
    """Render an email kind in a locale with the customer's facts."""

    def __init__(self, template_dir: Path | None = None, *, brand: Brand | None = None) -> None:
        self.brand = brand or Brand()
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(template_dir or TEMPLATE_DIR),
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html",), default_for_string=False, default=False
            ),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def render(self, facts: EmailFacts) -> RenderedEmail:
        """Render ``facts.kind`` with the personal context derived from ``facts``."""
        return self.render_template(facts.kind, facts.locale, email_context(facts, self.brand))

    def render_template(self, kind: str, locale: str, context: Mapping[str, Any]) -> RenderedEmail:
        if not _KIND_RE.match(kind):
            raise RenderError(f"email kind {kind!r} is not a template name")
        locales = dict.fromkeys((locale, locale.split("-")[0], DEFAULT_LOCALE))  # de-CH, de, en
        try:
            parts = [
                self._env.select_template([f"{kind}.{loc}.{ext}" for loc in locales]).render(
                    context
                )
                for ext in ("subject", "txt", "html")
            ]
        except jinja2.TemplateError as exc:
            raise RenderError(f"email {kind!r} ({locale}) cannot be rendered: {exc}") from exc
        subject = parts[0].strip()
        return RenderedEmail(subject=subject, text=parts[1], html=parts[2])


def email_context(facts: EmailFacts, brand: Brand) -> dict[str, Any]:
    """Template variables: names, the predicted days in the customer's zone, the reference."""
    language = facts.locale.split("-")[0]
    locale = language if language in _WEEKDAYS else DEFAULT_LOCALE
    try:
        zone = ZoneInfo(facts.tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RenderError(f"unknown time zone {facts.tz!r}") from exc
    product = _PRODUCT_LABELS[locale].get(facts.product_kind, facts.product_kind)
    details = dict(facts.details)
    tyre = details.get("tyre") or facts.fault.rsplit(".", 1)[-1]
    part = _TYRE_LABELS[locale].get(tyre) if facts.product_kind == "tyres" else None
    return {
        "brand_name": brand.name,
        "customer_name": facts.to_name,
        "device_name": facts.nickname or product,
        "part_name": part or facts.nickname or product,
        "product_kind": facts.product_kind,
        "summary": facts.summary,
        "ticket_ref": facts.ticket_ref,
        "eta_day": format_day(facts.eta_ms, zone, locale),
        "eta_from_day": format_day(facts.eta_lo_ms, zone, locale),
        "eta_to_day": format_day(facts.eta_hi_ms, zone, locale),
        "tz_name": facts.tz,
    }


def format_day(ts_ms: int | None, zone: ZoneInfo, locale: str = DEFAULT_LOCALE) -> str | None:
    """A calendar day in ``zone``, spelled out without the process's C locale.

    >>> format_day(1767225600000, ZoneInfo("America/New_York"))
    'Wednesday 31 December 2025'
    """
    if ts_ms is None:
        return None
    local = datetime.fromtimestamp(ts_ms / 1000, tz=UTC).astimezone(zone)
    weekday = _WEEKDAYS[locale][local.weekday()]
    return f"{weekday} {local.day} {_MONTHS[locale][local.month - 1]} {local.year}"


def message_id_for(idempotency_key: str, domain: str) -> str:
    """A ``Message-ID`` that is the same for every attempt of one outbox item.

    >>> message_id_for("email:abc:opened", "forewarn.invalid") == message_id_for(
    ...     "email:abc:opened", "forewarn.invalid")
    True
    """
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def build_message(
    *,
    brand: Brand,
    to_name: str,
    to_addr: str,
    rendered: RenderedEmail,
    message_id: str,
    correlation_id: str,
    date_ms: int,
    references: Sequence[str] = (),
) -> EmailMessage:
    """A multipart/alternative message (text first, then HTML) with forewarn's headers.

    ``references`` are earlier Message-IDs of the same ticket, so that mail programs thread
    later lifecycle messages under the first one.
    """
    headers = {
        "brand name": brand.name,
        "from address": brand.from_addr,
        "recipient name": to_name,
        "recipient address": to_addr,
        "subject": rendered.subject,
        "correlation id": correlation_id,
    }
    for label, value in headers.items():
        refuse_line_breaks(label, value)
    for mid in (message_id, *references):
        if not _MESSAGE_ID_RE.match(mid):
            raise UnsafeHeaderValue(f"{mid!r} is not a Message-ID")
    msg = EmailMessage(policy=SMTP)
    try:
        msg["From"] = Address(display_name=brand.name, addr_spec=brand.from_addr)
        msg["To"] = Address(display_name=to_name, addr_spec=to_addr)
    except (ValueError, IndexError) as exc:
        raise UnsafeHeaderValue(f"unusable address: {exc}") from exc
    msg["Subject"] = rendered.subject
    msg["Date"] = format_datetime(datetime.fromtimestamp(date_ms / 1000, tz=UTC))
    msg["Message-ID"] = message_id
    msg["X-Forewarn-Correlation-Id"] = correlation_id
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to this
    if references:
        msg["In-Reply-To"] = references[-1]
        msg["References"] = " ".join(references)
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    return msg


def refuse_line_breaks(label: str, value: str) -> None:
    """Raise ``UnsafeHeaderValue`` if ``value`` could end a header line and start another."""
    if any(ch in value for ch in "\r\n\x00\x0b\x0c\x85\u2028\u2029"):
        raise UnsafeHeaderValue(f"{label} contains a line break: {value!r}")
