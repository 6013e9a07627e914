"""Email previews and consent for staff, and the public one-click unsubscribe (RFC 8058).

``preview_router`` renders any kind in any locale with sample data and the live brand;
``consent_router`` reads and records consent, sends marketing campaigns and registers
date-based reminders. The app guards both with staff authentication.

``unsubscribe_router`` is public: the signed token in the path is the only credential.
``GET /u/{token}`` only shows a confirmation page (link scanners and mail-client previews fetch
links); ``POST /u/{token}`` with ``List-Unsubscribe=One-Click`` unsubscribes — what mail
programs send for ``List-Unsubscribe-Post`` and what the page's button sends.
"""

from __future__ import annotations

import html
from dataclasses import asdict
from datetime import date
from email.parser import BytesParser
from email.policy import HTTP
from typing import Annotated, Any, Final, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

from cloud.actions.consent import KINDS
from cloud.actions.customer_mail import CustomerMail, preview_kinds, render_preview
from cloud.actions.email_locales import CATEGORY_NAMES, language_of
from cloud.actions.reminders import Reminders
from cloud.errors import ConfigError, RejectedInput, RenderError

_LOCALE_RE: Final = r"^[a-z]{2}(-[A-Z]{2})?$"
_LINK_KEY_RE: Final = r"^[A-Za-z0-9._-]{1,600}$"
_MAX_BODY_BYTES: Final = 10_000
_PRIVATE: Final = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token must not leak to linked sites
    "X-Robots-Tag": "noindex",
}
# Previews are HTML written by marketing: show them, but let them run nothing and fetch little.
_PREVIEW_CSP: Final = "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'"
_PAGE: Final = {
    "en": {
        "title": "Unsubscribe",
        "ask": "Do you want to stop receiving {category} by email?",
        "button": "Unsubscribe",
        "done": "Done: you will no longer receive {category} by email.",
        "invalid": "This unsubscribe link is not valid. It may have been copied incompletely.",
    },
    "de": {
        "title": "Abmelden",
        "ask": "Möchten Sie keine {category} mehr per E-Mail erhalten?",
        "button": "Abmelden",
        "done": "Erledigt: Sie erhalten keine {category} mehr per E-Mail.",
        "invalid": "Dieser Abmeldelink ist ungültig. Vielleicht wurde er unvollständig kopiert.",
    },
    "fr": {
        "title": "Se désabonner",
        "ask": "Vous ne souhaitez plus recevoir de {category} par e-mail ?",
        "button": "Se désabonner",
        "done": "C'est fait : vous ne recevrez plus de {category} par e-mail.",
        "invalid": "Ce lien de désabonnement n'est pas valide. Il a peut-être été mal copié.",
    },
}

preview_router = APIRouter(prefix="/api/v1/email", tags=["email"])
consent_router = APIRouter(prefix="/api/v1/email", tags=["email"])
unsubscribe_router = APIRouter(tags=["unsubscribe"])

Token = Annotated[str, Path(pattern=_LINK_KEY_RE, description="the token from the email's link")]


class ConsentPublic(BaseModel):
    category: str
    message_class: str
    subscribed: bool
    source: str | None
    changed_ms: int | None


class ConsentChange(BaseModel):
    opted_in: bool
    source: str = Field(default="api", min_length=1, max_length=40)


class CampaignCreate(BaseModel):
    customer_ids: list[str] = Field(min_length=1, max_length=10_000)
    kind: str = "offer"


class ReminderCreate(BaseModel):
    customer_id: str = Field(min_length=1, max_length=64)
    kind: Literal["insurance_renewal", "service_due"]
    due_on: date
    device_id: str | None = Field(default=None, max_length=48)
    lead_days: int | None = Field(default=None, ge=0, le=366)
    repeat_months: int | None = Field(default=None, ge=1, le=120)


def customer_mail(request: Request) -> CustomerMail:
    """The app's ``CustomerMail``: ``app.state.customer_mail`` or the cloud service's ``mail``."""
    mail = getattr(request.app.state, "customer_mail", None)
    if mail is None:
        mail = getattr(getattr(request.app.state, "service", None), "mail", None)
    if not isinstance(mail, CustomerMail):
        raise HTTPException(503, "customer email is not configured")
    return mail


def reminders_of(request: Request) -> Reminders:
    """The app's ``Reminders``: ``app.state.reminders`` or the cloud service's ``reminders``."""
    found = getattr(request.app.state, "reminders", None)
    if found is None:
        found = getattr(getattr(request.app.state, "service", None), "reminders", None)
    if not isinstance(found, Reminders):
        raise HTTPException(503, "reminders are not configured")
    return found


@preview_router.get("/kinds")
def kinds() -> list[dict[str, Any]]:
    """Every email kind with its consent category and class, and the locales shipped."""
    return preview_kinds()


@preview_router.get("/preview/{kind}", response_model=None)
def preview(
    request: Request,
    kind: str,
    locale: Annotated[str, Query(pattern=_LOCALE_RE)] = "en",
    format: Annotated[Literal["html", "text"], Query()] = "html",
) -> Response:
    """``kind`` rendered with sample data, in ``locale``, as the customer would see it."""
    if kind not in KINDS:
        raise HTTPException(404, f"no email kind {kind!r}; see /api/v1/email/kinds")
    mail = customer_mail(request)
    try:
        rendered = render_preview(kind, locale, mail.renderer.brand, mail.renderer)
    except RenderError as exc:
        raise HTTPException(400, f"the template cannot be rendered: {exc}") from exc
    headers = {"Cache-Control": "no-store"}
    if format == "text":
        body = f"Subject: {rendered.subject}\n\n{rendered.text}"
        return PlainTextResponse(body, headers=headers)
    headers["Content-Security-Policy"] = _PREVIEW_CSP
    return HTMLResponse(rendered.html, headers=headers)


@consent_router.get("/consent/{customer_id}", response_model=list[ConsentPublic])
def consents(request: Request, customer_id: str) -> list[ConsentPublic]:
    """The customer's effective choice for every category."""
    try:
        found = customer_mail(request).consents(customer_id)
    except RejectedInput as exc:
        raise HTTPException(404, str(exc)) from exc
    return [ConsentPublic(**asdict(c)) for c in found]


@consent_router.put("/consent/{customer_id}/{category}")
def change_consent(
    request: Request, customer_id: str, category: str, change: ConsentChange
) -> dict[str, int]:
    """Record an opt-in (marketing needs one) or an opt-out; an opt-out suppresses queued mail."""
    try:
        suppressed = customer_mail(request).set_consent(
            customer_id, category, opted_in=change.opted_in, source=change.source
        )
    except RejectedInput as exc:
        raise HTTPException(422, str(exc)) from exc
    return {"suppressed": suppressed}


@consent_router.post("/campaigns/{campaign}")
def send_campaign(request: Request, campaign: str, body: CampaignCreate) -> dict[str, int]:
    """Queue a marketing email for each listed customer who opted in; once per campaign."""
    try:
        queued = customer_mail(request).queue_offer(campaign, body.customer_ids, body.kind)
    except RejectedInput as exc:
        raise HTTPException(422, str(exc)) from exc
    return {"queued": queued, "skipped": len(set(body.customer_ids)) - queued}


@consent_router.post("/reminders", status_code=201)
def add_reminder(request: Request, body: ReminderCreate) -> dict[str, Any]:
    """Remind a customer ahead of a date (insurance renewal, service due)."""
    try:
        added = reminders_of(request).add(
            body.customer_id, body.kind, body.due_on, device_id=body.device_id,
            lead_days=body.lead_days, repeat_months=body.repeat_months,
        )  # fmt: skip
    except RejectedInput as exc:
        raise HTTPException(422, str(exc)) from exc
    return asdict(added)


@consent_router.get("/reminders/{customer_id}")
def list_reminders(request: Request, customer_id: str) -> list[dict[str, Any]]:
    return [asdict(r) for r in reminders_of(request).reminders(customer_id)]


@unsubscribe_router.get("/u/{token}", response_class=HTMLResponse)
def confirm_page(request: Request, token: Token) -> HTMLResponse:
    """A page asking to confirm; fetching it changes nothing."""
    mail = customer_mail(request)
    try:
        subject = mail.token_subject(token)
    except (RejectedInput, ConfigError):
        return _invalid("en")
    lang = language_of(mail.locale_of(subject.customer_id))
    words = _PAGE[lang]
    category = html.escape(CATEGORY_NAMES[lang][subject.category])
    body = (
        f"<p>{words['ask'].format(category=category)}</p>"
        f'<form method="post" action="/u/{html.escape(token)}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        f'<button type="submit" style="{_BUTTON_STYLE}">{words["button"]}</button></form>'
    )
    return _page(lang, words["title"], body, 200)


@unsubscribe_router.post("/u/{token}", response_class=HTMLResponse)
async def one_click(request: Request, token: Token) -> HTMLResponse:
    """RFC 8058 one-click unsubscribe: the body must carry ``List-Unsubscribe=One-Click``."""
    body = await request.body()
    if len(body) > _MAX_BODY_BYTES or not _is_one_click(body, request.headers.get("content-type")):
        raise HTTPException(400, "expected the form field List-Unsubscribe=One-Click")
    mail = customer_mail(request)
    try:
        subject = mail.token_subject(token)
        result = mail.unsubscribe(token)
    except (RejectedInput, ConfigError):
        return _invalid("en")
    lang = language_of(mail.locale_of(subject.customer_id))
    words = _PAGE[lang]
    category = html.escape(CATEGORY_NAMES[lang][result.category])
    return _page(lang, words["title"], f"<p>{words['done'].format(category=category)}</p>", 200)


def _is_one_click(body: bytes, content_type: str | None) -> bool:
    """Whether a form body (urlencoded or multipart, RFC 8058 §3.1) says One-Click."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        # The stdlib MIME parser reads form-data too; no dependency for one field.
        head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
        form = BytesParser(policy=HTTP).parsebytes(head + body)
        for part in form.iter_parts() if form.is_multipart() else ():
            if part.get_param("name", header="content-disposition") == "List-Unsubscribe":
                payload = part.get_payload(decode=True)
                return isinstance(payload, bytes) and payload.strip() == b"One-Click"
        return False
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return fields.get("List-Unsubscribe") == ["One-Click"]


_BUTTON_STYLE: Final = (
    "font-size:17px;padding:14px 28px;border:0;border-radius:6px;background:#0b5cad;"
    "color:#fff;cursor:pointer"
)


def _invalid(lang: str) -> HTMLResponse:
    words = _PAGE[lang]
    return _page(lang, words["title"], f"<p>{words['invalid']}</p>", 404)


def _page(lang: str, title: str, body: str, status: int) -> HTMLResponse:
    page = (
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title></head>"
        '<body style="margin:0;font-family:Helvetica,Arial,sans-serif;font-size:17px;'
        'line-height:1.5;color:#1d2329;background:#f4f5f7">'
        '<main style="max-width:600px;margin:0 auto;padding:24px 16px">'
        f'<h1 style="font-size:22px">{html.escape(title)}</h1>{body}</main></body></html>'
    )
    return HTMLResponse(page, status_code=status, headers=_PRIVATE)
