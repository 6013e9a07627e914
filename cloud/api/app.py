"""FastAPI application: health, devices, telemetry, tickets, emails, dead letters, stats."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from cloud.service import CloudService

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0)]


class Health(BaseModel):
    status: str
    broker_connected: bool


class DevicePublic(BaseModel):
    device_id: str
    kind: str
    online: bool
    presence: str
    presence_reason: str | None
    first_seen_ms: int
    last_seen_ms: int
    last_seen: str
    readings: int
    fw: str | None
    model: str | None
    attributes: dict[str, Any]


class SeriesPublic(BaseModel):
    device_id: str
    channel: str
    ts_ms: list[int]
    values: list[float | None]
    min: list[float | None] | None
    max: list[float | None] | None


def _iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat(timespec="seconds")


def _floats(xs: Any) -> list[float | None]:
    return [None if x != x else float(x) for x in xs.tolist()]


def create_app(service: CloudService) -> FastAPI:
    app = FastAPI(
        title="forewarn",
        version="0.1.0",
        description="Predictive service and replenishment: devices, predictions, tickets, emails.",
    )

    def device_public(info: Any, now_ms: int) -> DevicePublic:
        return DevicePublic(
            device_id=info.device_id,
            kind=info.kind,
            online=info.online(now_ms),
            presence=info.presence,
            presence_reason=info.presence_reason,
            first_seen_ms=info.first_seen_ms,
            last_seen_ms=info.last_seen_ms,
            last_seen=_iso(info.last_seen_ms),
            readings=info.readings,
            fw=info.fw,
            model=info.model,
            attributes=info.attributes,
        )

    @app.get("/health", response_model=Health)
    def health() -> Health:
        return Health(status="ok", broker_connected=service.subscriber.connected.is_set())

    @app.get("/api/v1/stats")
    def stats() -> dict[str, Any]:
        out = service.stats()
        out["store"] = dataclasses.asdict(out["store"])
        if "influx" in out:
            out["influx"] = dataclasses.asdict(out["influx"])
        out["actions"] = dataclasses.asdict(service.actions.counts())
        return out

    @app.get("/api/v1/devices", response_model=list[DevicePublic])
    def devices(
        kind: str | None = None, online: bool | None = None, limit: Limit = 100, offset: Offset = 0
    ) -> list[DevicePublic]:
        now = service.clock_ms()
        out = [device_public(d, now) for d in service.directory.all()]
        out = [d for d in out if (kind is None or d.kind == kind)]
        out = [d for d in out if (online is None or d.online == online)]
        return out[offset : offset + limit]

    @app.get("/api/v1/devices/{device_id}")
    def device(device_id: str) -> dict[str, Any]:
        info = service.directory.get(device_id)
        if info is None:
            raise HTTPException(404, f"no device {device_id!r}")
        return {
            **device_public(info, service.clock_ms()).model_dump(),
            "channels": service.store.channels(device_id),
            "events": service.records.events(device_id, limit=50),
        }

    @app.get("/api/v1/devices/{device_id}/telemetry", response_model=SeriesPublic)
    def telemetry(
        device_id: str,
        channel: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
        max_points: Annotated[int, Query(ge=1, le=10_000)] = 500,
    ) -> SeriesPublic:
        info = service.directory.get(device_id)
        if info is None:
            raise HTTPException(404, f"no device {device_id!r}")
        # Buckets span the requested window; by default the device's known history.
        start = info.first_seen_ms if start_ms is None else start_ms
        end = info.last_seen_ms if end_ms is None else end_ms
        s = service.store.query(device_id, channel, start, end, max_points)
        return SeriesPublic(
            device_id=device_id,
            channel=channel,
            ts_ms=[int(t) for t in s.ts_ms.tolist()],
            values=_floats(s.values),
            min=_floats(s.min) if s.min is not None else None,
            max=_floats(s.max) if s.max is not None else None,
        )

    @app.get("/api/v1/tickets")
    def tickets(status: str | None = None, limit: Limit = 50, offset: Offset = 0) -> list[Any]:
        return [dataclasses.asdict(t) for t in service.actions.tickets(status, limit, offset)]

    @app.get("/api/v1/tickets/{ticket_id}")
    def ticket(ticket_id: int) -> dict[str, Any]:
        t = service.actions.ticket(ticket_id)
        if t is None:
            raise HTTPException(404, f"no ticket {ticket_id}")
        return dataclasses.asdict(t)

    @app.get("/api/v1/emails")
    def emails(limit: Limit = 50, offset: Offset = 0) -> list[Any]:
        return [dataclasses.asdict(e) for e in service.actions.emails(limit, offset)]

    @app.get("/api/v1/dead-letters")
    def dead_letters(reason: str | None = None, limit: Limit = 50, offset: Offset = 0) -> list[Any]:
        return [dataclasses.asdict(d) for d in service.records.dead_letters(limit, offset, reason)]

    @app.get("/", response_class=HTMLResponse)
    def overview(request: Request) -> HTMLResponse:
        now = service.clock_ms()
        devs = service.directory.all()
        by_kind: dict[str, dict[str, int]] = {}
        for d in devs:
            k = by_kind.setdefault(d.kind, {"total": 0, "online": 0})
            k["total"] += 1
            k["online"] += int(d.online(now))
        return TEMPLATES.TemplateResponse(
            request,
            "overview.html",
            {
                "now": _iso(now),
                "stats": service.stats(),
                "by_kind": by_kind,
                "tickets": service.actions.tickets(None, 20, 0),
                "emails": service.actions.emails(10, 0),
                "rejects": service.records.reject_counts(),
                "iso": _iso,
            },
        )

    return app
