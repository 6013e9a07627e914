"""Customer emails: jinja2 templates per message kind and locale, and the MIME message around them.

Templates live in ``templates/email/`` as ``{kind}.{locale}.subject``, ``.txt`` and ``.html``;
a brand folder's ``templates/`` wins over them file by file. A locale without its own file falls
back to its language (``de-CH`` → ``de``), then to ``en``. HTML is autoescaped, text and subject
are not (they are never interpreted as markup), and a variable a template needs but the context
lacks raises ``RenderError`` instead of rendering an empty string.

Header values are refused, not cleaned, when they carry CR or LF: ``UnsafeHeaderValue`` is a
``RejectedInput``, so the outbox parks such a message for a human instead of retrying it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import SMTP, Policy
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Final, cast
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2

from cloud.actions import email_locales as words
from cloud.actions.consent import CATEGORIES, SendPolicy, UnsubscribeTokens, kind_of
from cloud.errors import RejectedInput, RenderError

TEMPLATE_DIR: Final = Path(__file__).resolve().parent / "templates" / "email"
DEFAULT_LOCALE: Final = "en"
_KIND_RE: Final = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_MESSAGE_ID_RE: Final = re.compile(r"^<[^<>\s@]+@[^<>\s@]+>$")
_ENCODED_WORD_RE: Final = re.compile(r"=\?[^?\s]*\?[bBqQ]\?")


class _UriListHeader(UnstructuredHeader):
    """``List-Unsubscribe``: a list of ``<URI>``, written verbatim and folded between items.

    The stdlib folds an over-long word of an unstructured header into RFC 2047 encoded words,
    which turns a long unsubscribe link into text no mail program can follow.
    """

    def fold(self, *, policy: Policy) -> str:
        # The registry mixes BaseHeader in at run time (the stubs do not know that).
        name = cast("BaseHeader", self).name
        items = [item.strip() for item in str(self).split(",")]
        return f"{name}: " + f",{policy.linesep} ".join(items) + policy.linesep


_HEADER_TYPES: Final = HeaderRegistry()
_HEADER_TYPES.map_to_type("list-unsubscribe", _UriListHeader)  # type: ignore[arg-type]
MESSAGE_POLICY: Final = SMTP.clone(header_factory=_HEADER_TYPES)


class UnsafeHeaderValue(RejectedInput):
    """A header value with CR/LF or an unusable address: it could forge headers, refused."""


@dataclass(frozen=True, slots=True)
class Logo:
    """A logo image sent inside the message (``cid:``), for mail programs that block URLs."""

    data: bytes
    subtype: str  # png | jpeg | gif


@dataclass(frozen=True, slots=True)
class Brand:
    """Who the emails come from and how they look; loaded from a brand folder (``branding``).

    ``message_id_domain`` is the right-hand side of every ``Message-ID``; set it to a domain the
    sender controls (the ``.invalid`` default is only safe for tests and demos).
    ``public_url`` is where ``/u/{token}`` unsubscribe links point.
    """

    name: str = "forewarn service"
    from_addr: str = "service@forewarn.invalid"
    message_id_domain: str = "forewarn.invalid"
    reply_to: str | None = None
    logo_url: str | None = None
    logo: Logo | None = None
    primary_colour: str = "#0b5cad"
    text_colour: str = "#1d2329"
    background_colour: str = "#f4f5f7"
    company: str = "forewarn"
    postal_address: str = ""
    support_url: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    unsubscribe_mailto: str | None = None
    sending: SendPolicy = field(default_factory=SendPolicy)
    template_dir: Path | None = None  # overrides, file by file

    @property
    def logo_cid(self) -> str:
        return f"logo@{self.message_id_domain}"


@dataclass(frozen=True, slots=True)
class EmailFacts:
    """Everything an email says, frozen when it is queued and kept in the outbox payload."""

    kind: str  # template name, e.g. "dispatch_opened"
    locale: str
    tz: str  # the customer's IANA time zone
    to_name: str
    to_addr: str
    nickname: str | None
    product_kind: str
    fault: str
    summary: str
    ticket_ref: str  # empty for messages about no ticket (reminders, offers)
    correlation_id: str
    message_id: str
    eta_ms: int | None = None
    eta_lo_ms: int | None = None
    eta_hi_ms: int | None = None
    details: tuple[tuple[str, str], ...] = field(default=())
    customer_id: str | None = None
    slot_start_ms: int | None = None  # booked technician visit
    slot_end_ms: int | None = None
    due_on: str | None = None  # ISO date a reminder is about (renewal, service due)
    thread_kind: str | None = None  # kind of the thread's first message: its subject is kept
    references: tuple[str, ...] = ()  # Message-IDs this one answers, oldest first
    deferred_to_ms: int | None = None  # set when quiet hours or the cap deferred it: its Date

    @property
    def category(self) -> str:
        try:
            return kind_of(self.kind).category
        except RejectedInput as exc:
            raise RenderError(str(exc)) from exc

    def to_payload(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["details"] = [list(pair) for pair in self.details]
        payload["references"] = list(self.references)
        return payload

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> EmailFacts:
        try:
            values = dict(payload)
            values["details"] = tuple((str(k), str(v)) for k, v in values.get("details", ()))
            values["references"] = tuple(str(r) for r in values.get("references", ()))
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise RenderError(f"outbox payload is not an email: {exc}") from exc


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    text: str
    html: str
    headers: tuple[tuple[str, str], ...] = ()  # threading and List-Unsubscribe headers
    date_ms: int | None = None  # the Date header when it is not the queueing time


class EmailRenderer:
    """Render an email kind in a locale with the customer's facts.

    With ``tokens`` every unsubscribable message carries a one-click unsubscribe link
    (RFC 8058); without them marketing messages cannot be rendered at all.
    """

    def __init__(
        self,
        template_dir: Path | None = None,
        *,
        brand: Brand | None = None,
        tokens: UnsubscribeTokens | None = None,
    ) -> None:
        self.brand = brand or Brand()
        self.tokens = tokens
        folders = [template_dir or TEMPLATE_DIR]
        if self.brand.template_dir is not None:
            folders.insert(0, self.brand.template_dir)
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(folders),
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html",), default_for_string=False, default=False
            ),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.filters["ucfirst"] = _ucfirst

    def render(self, facts: EmailFacts) -> RenderedEmail:
        """Render ``facts.kind`` with the personal context derived from ``facts``."""
        category = CATEGORIES[facts.category]
        context = email_context(facts, self.brand)
        headers: list[tuple[str, str]] = []
        if facts.references:
            headers += [("In-Reply-To", facts.references[-1])]
            headers += [("References", " ".join(facts.references))]
        if category.unsubscribable and self.tokens is not None and facts.customer_id:
            token = self.tokens.sign(facts.customer_id, category.name)
            url = f"{self.brand.public_url.rstrip('/')}/u/{token}"
            context["unsubscribe_url"] = url
            links = [f"<{url}>"]
            if self.brand.unsubscribe_mailto:
                subject = quote(f"unsubscribe {token}")
                links.append(f"<mailto:{self.brand.unsubscribe_mailto}?subject={subject}>")
            headers += [("List-Unsubscribe", ", ".join(links))]
            headers += [("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")]
        elif category.message_class == "marketing":
            raise RenderError(f"{facts.kind!r} is marketing and needs an unsubscribe link")
        out = self.render_template(facts.kind, facts.locale, context)
        subject = out.subject
        if facts.thread_kind and facts.thread_kind != facts.kind:  # the thread keeps its subject
            subject = self._render_one(facts.thread_kind, facts.locale, "subject", context).strip()
        return RenderedEmail(subject, out.text, out.html, tuple(headers), facts.deferred_to_ms)

    def render_template(self, kind: str, locale: str, context: Mapping[str, Any]) -> RenderedEmail:
        parts = [self._render_one(kind, locale, ext, context) for ext in ("subject", "txt", "html")]
        return RenderedEmail(subject=parts[0].strip(), text=parts[1], html=parts[2])

    def _render_one(self, kind: str, locale: str, ext: str, context: Mapping[str, Any]) -> str:
        if not _KIND_RE.match(kind):
            raise RenderError(f"email kind {kind!r} is not a template name")
        locales = dict.fromkeys((locale, locale.split("-")[0], DEFAULT_LOCALE))  # de-CH, de, en
        try:
            names = [f"{kind}.{loc}.{ext}" for loc in locales]
            return self._env.select_template(names).render(context)
        except jinja2.TemplateError as exc:
            raise RenderError(f"email {kind!r} ({locale}) cannot be rendered: {exc}") from exc


def email_context(facts: EmailFacts, brand: Brand) -> dict[str, Any]:
    """Template variables: names, the predicted days in the customer's zone, the reference.

    A slot or a due date the facts lack is absent from the context, so a template that needs
    it fails to render rather than printing a blank.
    """
    lang = words.language_of(facts.locale)
    try:
        zone = ZoneInfo(facts.tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RenderError(f"unknown time zone {facts.tz!r}") from exc
    product = words.PRODUCT_LABELS[lang].get(facts.product_kind, facts.product_kind)
    details = dict(facts.details)
    tyre = details.get("tyre") or details.get("unit") or facts.fault.rsplit(".", 1)[-1]
    part = words.TYRE_LABELS[lang].get(tyre) if facts.product_kind == "tyres" else None
    category = facts.category
    ui = dict(words.UI[lang])
    ui["unsubscribe"] = ui["unsubscribe"].format(category=words.CATEGORY_NAMES[lang][category])
    why = {"safety": "why_safety", "offers": "why_marketing"}.get(category, "why_service")
    context: dict[str, Any] = {
        "lang": lang,
        "ui": ui,
        "why": ui[why],
        "brand_name": brand.name,
        "brand": {
            "name": brand.name,
            "company": brand.company,
            "postal_address": brand.postal_address,
            "support_url": brand.support_url,
            "primary": brand.primary_colour,
            "text": brand.text_colour,
            "background": brand.background_colour,
            "logo_src": f"cid:{brand.logo_cid}" if brand.logo else brand.logo_url,
        },
        "customer_name": facts.to_name,
        "device_name": facts.nickname or product,
        "nickname": facts.nickname,
        "your_device": words.your_device(lang, facts.product_kind, facts.nickname),
        "product_name": product,
        "part_name": part or facts.nickname or product,
        "product_kind": facts.product_kind,
        "summary": facts.summary,
        "problem": words.problem_text(facts.fault, facts.summary, lang),
        "ticket_ref": facts.ticket_ref,
        "eta_day": format_day(facts.eta_ms, zone, lang),
        "eta_from_day": format_day(facts.eta_lo_ms, zone, lang),
        "eta_to_day": format_day(facts.eta_hi_ms, zone, lang),
        "tz_name": facts.tz,
        "unsubscribe_url": None,
    }
    if facts.slot_start_ms is not None and facts.slot_end_ms is not None:
        start, end = _local(facts.slot_start_ms, zone), _local(facts.slot_end_ms, zone)
        context["slot"] = words.spell_window(start, end, lang)
    if facts.due_on is not None:
        try:
            due = datetime.fromisoformat(facts.due_on)
        except ValueError as exc:
            raise RenderError(f"due date {facts.due_on!r} is not an ISO date") from exc
        context["due_day"] = words.spell_day(due, lang)
    return context


def _ucfirst(text: str) -> str:
    """Capitalise the first letter only (``capitalize`` would lower-case a nickname)."""
    return text[:1].upper() + text[1:]


def format_day(ts_ms: int | None, zone: ZoneInfo, locale: str = DEFAULT_LOCALE) -> str | None:
    """A calendar day in ``zone``, spelled out without the process's C locale.

    >>> format_day(1767225600000, ZoneInfo("America/New_York"))
    'Wednesday 31 December 2025'
    >>> format_day(1767225600000, ZoneInfo("Europe/Paris"), "fr")
    'jeudi 1er janvier 2026'
    """
    if ts_ms is None:
        return None
    return words.spell_day(_local(ts_ms, zone), words.language_of(locale))


def _local(ts_ms: int, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).astimezone(zone)


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

    Threading comes from ``rendered.headers`` (or ``references``: earlier Message-IDs of the
    same ticket, so mail programs thread later messages under the first one).
    """
    headers = {
        "brand name": brand.name,
        "from address": brand.from_addr,
        "recipient name": to_name,
        "recipient address": to_addr,
        "subject": rendered.subject,
        "correlation id": correlation_id,
        **{f"header {name}": value for name, value in rendered.headers},
    }
    for label, value in headers.items():
        refuse_line_breaks(label, value)
    extra = dict(rendered.headers)
    if references:
        extra["In-Reply-To"] = references[-1]
        extra["References"] = " ".join(references)
    for mid in (message_id, *extra.get("References", "").split()):
        if not _MESSAGE_ID_RE.match(mid):
            raise UnsafeHeaderValue(f"{mid!r} is not a Message-ID")
    if "In-Reply-To" in extra and not _MESSAGE_ID_RE.match(extra["In-Reply-To"]):
        raise UnsafeHeaderValue(f"{extra['In-Reply-To']!r} is not a Message-ID")
    msg = EmailMessage(policy=MESSAGE_POLICY)
    try:
        msg["From"] = Address(display_name=brand.name, addr_spec=brand.from_addr)
        msg["To"] = Address(display_name=to_name, addr_spec=to_addr)
        if brand.reply_to:
            msg["Reply-To"] = Address(display_name=brand.name, addr_spec=brand.reply_to)
    except (ValueError, IndexError) as exc:
        raise UnsafeHeaderValue(f"unusable address: {exc}") from exc
    msg["Subject"] = rendered.subject
    if rendered.date_ms is not None:  # a deferred email is dated when it may go, not queued
        date_ms = rendered.date_ms
    msg["Date"] = format_datetime(datetime.fromtimestamp(date_ms / 1000, tz=UTC))
    msg["Message-ID"] = message_id
    msg["X-Forewarn-Correlation-Id"] = correlation_id
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to this
    for name in ("In-Reply-To", "References", "List-Unsubscribe", "List-Unsubscribe-Post"):
        if name in extra:
            msg[name] = extra[name]
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    if brand.logo is not None and f"cid:{brand.logo_cid}" in rendered.html:
        html_part = msg.get_body(("html",))
        if not isinstance(html_part, EmailMessage):
            raise RenderError("the HTML part is missing")
        html_part.add_related(
            brand.logo.data, "image", brand.logo.subtype, cid=f"<{brand.logo_cid}>"
        )
    return msg


def refuse_line_breaks(label: str, value: str) -> None:
    """Raise ``UnsafeHeaderValue`` if ``value`` could end a header line and start another,
    or carries an RFC 2047 encoded word (the stdlib decodes those when a header is set, so
    ``=?utf-8?q?Bcc=3A_x=40y?=`` in a name would reach the wire as ``Bcc: x@y``)."""
    if any(ch in value for ch in "\r\n\x00\x0b\x0c\x85\u2028\u2029"):
        raise UnsafeHeaderValue(f"{label} contains a line break: {value!r}")
    if _ENCODED_WORD_RE.search(value):
        raise UnsafeHeaderValue(f"{label} contains an encoded word: {value!r}")
