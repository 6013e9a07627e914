"""The web console's pages: fleet, devices with charts, the ticket queue with its actions and
live events, customer messages and dead letters (server-rendered, behind a signed session)."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from typing import Annotated, Any, Final

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from starlette.responses import StreamingResponse

from cloud.accounts import Role
from cloud.actions.email import EmailFacts
from cloud.api.auth import ConsoleUser
from cloud.api.charts import ChartSeries, Marks, render_chart
from cloud.api.deps import RowId, ServiceDep
from cloud.api.pages import PAGE, check_form, need, render_page, safe_next
from cloud.api.routes import devices as device_routes
from cloud.api.routes import tickets as ticket_routes
from cloud.api.schemas import TicketDetailPublic, TicketPublic, iso
from cloud.api.ticket_actions import CLOSURE_CODES, apply_action
from cloud.errors import RejectedInput, RenderError
from cloud.service import CloudService

router = APIRouter(include_in_schema=False)
CHART_POINTS: Final = 300
CHARTS_PER_DEVICE: Final = 4
SSE_POLL_S: Final = 1.0
SSE_MAX_S: Final = 300.0  # browsers reconnect by themselves; bounded streams never pin shutdown


# -- fleet --------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, service: ServiceDep, user: ConsoleUser) -> HTMLResponse:
    devices = device_routes.visible_devices(service, user[0])
    healths = device_routes.HEALTH
    by_kind: dict[str, dict[str, int]] = {}
    for d in devices:
        row = by_kind.setdefault(d.kind, dict.fromkeys(("total", *healths), 0))
        row["total"] += 1
        row[d.health] += 1
    attention = [d for d in devices if d.health not in ("ok", "info")]
    where = ticket_routes.ticket_filter(user[0], ["open"], None, None, None)
    return render_page(
        request, "overview.html", user,
        by_kind=by_kind, healths=healths, attention=attention[:PAGE],
        open_tickets=service.reads.count_tickets(where),
        stats=service.stats() if user[0].customer_id is None else None,
        now=iso(service.clock_ms()),
    )  # fmt: skip


@router.get("/devices", response_class=HTMLResponse)
def device_list(
    request: Request,
    service: ServiceDep,
    user: ConsoleUser,
    kind: str | None = None,
    health: str | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    found = device_routes.visible_devices(service, user[0])
    found = [d for d in found if (kind is None or d.kind == kind)]
    found = [d for d in found if (health is None or d.health == health)]
    return render_page(
        request, "devices.html", user, devices=found[offset : offset + PAGE],
        total=len(found), kind=kind, health=health, offset=offset, page=PAGE,
    )  # fmt: skip


@router.get("/devices/{device_id}", response_class=HTMLResponse)
def device_page(
    device_id: str, request: Request, service: ServiceDep, user: ConsoleUser
) -> HTMLResponse:
    info = device_routes.visible_device(service, user[0], device_id)
    severity = service.reads.open_severity().get(device_id)
    device = device_routes.device_public(
        info, service.clock_ms(), service.reads.owner(device_id), severity
    )
    predictions = service.predictions.for_device(device_id)
    where = ticket_routes.ticket_filter(user[0], None, device_id, None, None)
    tickets = service.reads.tickets(where, 20, 0)
    top = predictions[0] if predictions else None
    marks = Marks(
        onset_ms=top.opened_ms if top else None,
        eta_ms=top.eta_ms if top else None,
        eta_lo_ms=top.eta_lo_ms if top else None,
        eta_hi_ms=top.eta_hi_ms if top else None,
    )
    start, end = info.first_seen_ms, info.last_seen_ms
    charts = [
        # The SVG is built from escaped parts (see cloud.api.charts).
        Markup(render_chart(_series(service, device_id, ch, start, end), marks))  # noqa: S704
        for ch in key_channels(service.store.channels(device_id), predictions)
    ]
    return render_page(
        request, "device.html", user, device=device, predictions=predictions,
        tickets=[TicketPublic.of(t) for t in tickets], charts=charts, marks=marks,
        events=service.records.events(device_id, limit=20),
    )  # fmt: skip


# What a service team looks at first when nothing is predicted, per product kind's channels.
KEY_CHANNELS: Final = (
    r"cabinet_c",
    r"compressor_on",
    r"evap_c",
    r"[a-z]{2}\.pressure_kpa",
    r"[a-z]{2}\.tread_mm",
    r"slot\.[A-J][0-9]+\.stock",
)


def key_channels(channels: list[str], predictions: list[Any]) -> list[str]:
    """The channels the strongest prediction is about first (its unit, e.g. tyre ``fr``, and
    the words of its main signals, e.g. ``pressure``), then the device's other channels."""

    def weight(channel: str) -> float:
        parts = set(channel.replace("_", ".").split("."))
        total = 0.0
        for rank, p in enumerate(predictions[:3]):
            scale = 1.0 / (rank + 1)
            if any(value in parts for _key, value in p.details):
                total += 2 * scale
            for signal, share in p.contributions:
                if parts & set(signal.split("_")):
                    total += share * scale
        return total

    def usual(channel: str) -> int:
        for i, pattern in enumerate(KEY_CHANNELS):
            if re.fullmatch(pattern, channel):
                return i
        return len(KEY_CHANNELS)

    ranked = sorted(channels, key=lambda c: (-weight(c), usual(c), channels.index(c)))
    return ranked[:CHARTS_PER_DEVICE]


def _series(
    service: CloudService, device_id: str, channel: str, start_ms: int, end_ms: int
) -> ChartSeries:
    s = service.store.query(device_id, channel, start_ms, end_ms, CHART_POINTS)
    lo = s.min if s.min is not None else s.values
    hi = s.max if s.max is not None else s.values
    return ChartSeries(
        channel,
        [int(t) for t in s.ts_ms.tolist()],
        [float(v) for v in s.values.tolist()],
        [float(v) for v in lo.tolist()],
        [float(v) for v in hi.tolist()],
    )


# -- tickets ------------------------------------------------------------------------------


@router.get("/tickets", response_class=HTMLResponse)
def ticket_queue(
    request: Request,
    service: ServiceDep,
    user: ConsoleUser,
    status: str = "open",
    priority: str | None = None,
    action: str | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    where = ticket_routes.ticket_filter(
        user[0], [status] if status else None, None, action or None, priority or None
    )
    items = service.reads.tickets(where, PAGE, offset)
    return render_page(
        request, "tickets.html", user, tickets=[TicketPublic.of(t) for t in items],
        total=service.reads.count_tickets(where), status=status, priority=priority or "",
        action=action or "", offset=offset, page=PAGE, closure_codes=CLOSURE_CODES,
        technicians=_technicians(service),
    )  # fmt: skip


@router.get("/tickets/{ticket_id}", response_class=HTMLResponse)
def ticket_page(
    ticket_id: RowId, request: Request, service: ServiceDep, user: ConsoleUser
) -> HTMLResponse:
    ticket_routes.visible_ticket(service, user[0], ticket_id)
    found = service.actions.ticket(ticket_id)
    if found is None:
        raise HTTPException(404, f"no ticket {ticket_id}")
    return render_page(
        request, "ticket.html", user, ticket=TicketDetailPublic.of(found),
        closure_codes=CLOSURE_CODES, technicians=_technicians(service),
    )  # fmt: skip


@router.post("/tickets/{ticket_id}/{verb}")
def ticket_action(
    ticket_id: RowId,
    verb: str,
    request: Request,
    service: ServiceDep,
    user: ConsoleUser,
    csrf: Annotated[str, Form(max_length=200)],
    technician_id: Annotated[str | None, Form(max_length=64)] = None,
    status: Annotated[str | None, Form(max_length=24)] = None,
    closure_code: Annotated[str | None, Form(max_length=24)] = None,
    note: Annotated[str | None, Form(max_length=2000)] = None,
    back: Annotated[str, Form(max_length=500)] = "/tickets",
) -> Response:
    check_form(user, csrf)
    ticket_routes.visible_ticket(service, user[0], ticket_id)
    apply_action(
        service, user[0], ticket_id, verb,
        technician_id=technician_id or None, status=status or None,
        closure_code=closure_code or None, note=note or None,
    )  # fmt: skip
    return RedirectResponse(safe_next(back), status_code=303)


def _technicians(service: CloudService) -> list[Any]:
    registry = getattr(service.actions, "technicians", None)
    if registry is None or not hasattr(registry, "list"):
        return []
    found: list[Any] = registry.list(active_only=True)
    return found


@router.get("/events")
async def live_events(request: Request, service: ServiceDep, user: ConsoleUser) -> Response:
    """Server-sent events: ``tickets`` whenever a ticket opens or changes."""

    async def stream() -> Any:
        started = time.monotonic()
        # The state as of connecting: whatever changes after the first line is announced.
        last = await run_in_threadpool(service.reads.ticket_fingerprint)
        yield "retry: 2000\n\n"
        closing: threading.Event = request.app.state.closing  # set when the server stops
        while not closing.is_set() and time.monotonic() - started < SSE_MAX_S:
            await asyncio.sleep(SSE_POLL_S)
            if await request.is_disconnected():
                return
            now = await run_in_threadpool(service.reads.ticket_fingerprint)
            if now != last:
                yield f"event: tickets\ndata: {json.dumps(list(now))}\n\n"
                last = now
            else:
                yield ": idle\n\n"

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )


# -- messages, dead letters, reports --------------------------------------------------------


@router.get("/emails", response_class=HTMLResponse)
def email_log(
    request: Request,
    service: ServiceDep,
    user: ConsoleUser,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    found = service.reads.emails(user[0].customer_id, None, limit=PAGE, offset=offset)
    return render_page(request, "emails.html", user, emails=found, offset=offset, page=PAGE)


@router.get("/emails/{email_id}", response_class=HTMLResponse)
def email_page(
    email_id: RowId, request: Request, service: ServiceDep, user: ConsoleUser
) -> HTMLResponse:
    found = service.reads.email(email_id)
    if found is None or (
        user[0].customer_id is not None and found.customer_id != user[0].customer_id
    ):
        raise HTTPException(404, f"no email {email_id}")
    rendered, problem = None, None
    payload = service.reads.email_payload(found)
    if payload is None:
        problem = "the outbox no longer holds what this email was rendered from"
    else:
        try:
            rendered = service.renderer.render(EmailFacts.from_payload(payload))
        except (RenderError, RejectedInput) as exc:
            problem = f"cannot render: {exc}"
    return render_page(request, "email.html", user, email=found, rendered=rendered, problem=problem)


@router.get("/dead-letters", response_class=HTMLResponse)
def dead_letters(
    request: Request,
    service: ServiceDep,
    user: ConsoleUser,
    reason: str | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    need(user, Role.DISPATCHER, fleet_wide=True)
    return render_page(
        request, "dead_letters.html", user,
        letters=service.records.dead_letters(PAGE, offset, reason or None),
        reasons=service.records.reject_counts(), reason=reason or "", offset=offset, page=PAGE,
    )  # fmt: skip
