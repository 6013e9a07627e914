"""Devices, their telemetry history (bucketed) and their current predictions."""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np
from fastapi import APIRouter, HTTPException, Query

from cloud.accounts import Principal
from cloud.api.auth import Reader
from cloud.api.deps import Limit, Offset, ServiceDep
from cloud.api.schemas import (
    DeviceDetailPublic,
    DevicePublic,
    OwnerPublic,
    PredictionPublic,
    SeriesPublic,
    iso,
)
from cloud.devices import DeviceInfo
from cloud.readmodel import Owner
from cloud.service import CloudService

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])
MAX_POINTS = 10_000
HEALTH = ("ok", "info", "warning", "critical", "offline")


def device_public(
    info: DeviceInfo, now_ms: int, owner: Owner | None, severity: str | None
) -> DevicePublic:
    online = info.online(now_ms)
    return DevicePublic(
        device_id=info.device_id,
        kind=info.kind,
        online=online,
        health="offline" if not online else (severity or "ok"),
        presence=info.presence,
        presence_reason=info.presence_reason,
        first_seen_ms=info.first_seen_ms,
        last_seen_ms=info.last_seen_ms,
        last_seen=iso(info.last_seen_ms),
        readings=info.readings,
        fw=info.fw,
        model=info.model,
        owner=None
        if owner is None
        else OwnerPublic(
            customer_id=owner.customer_id,
            customer_name=owner.customer_name,
            nickname=owner.nickname,
            region=owner.region,
        ),
        attributes=info.attributes,
    )


def visible_devices(service: CloudService, principal: Principal) -> list[DevicePublic]:
    """Every device the caller may see, with health, sorted by id."""
    now = service.clock_ms()
    owners = service.reads.owners(principal.customer_id)
    severity = service.reads.open_severity()
    return [
        device_public(d, now, owners.get(d.device_id), severity.get(d.device_id))
        for d in service.directory.all()
        if principal.customer_id is None or d.device_id in owners
    ]


def visible_device(service: CloudService, principal: Principal, device_id: str) -> DeviceInfo:
    """The device, or 404 — also when it exists but belongs to another customer."""
    info = service.directory.get(device_id)
    if info is not None and principal.customer_id is not None:
        owner = service.reads.owner(device_id)
        if owner is None or owner.customer_id != principal.customer_id:
            info = None
    if info is None:
        raise HTTPException(404, f"no device {device_id!r}")
    return info


@router.get("", response_model=list[DevicePublic])
def list_devices(
    service: ServiceDep,
    principal: Reader,
    kind: str | None = None,
    online: bool | None = None,
    health: Annotated[str | None, Query(description=" | ".join(HEALTH))] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[DevicePublic]:
    out = visible_devices(service, principal)
    out = [d for d in out if kind is None or d.kind == kind]
    out = [d for d in out if online is None or d.online == online]
    out = [d for d in out if health is None or d.health == health]
    return out[offset : offset + limit]


@router.get("/{device_id}", response_model=DeviceDetailPublic)
def get_device(device_id: str, service: ServiceDep, principal: Reader) -> DeviceDetailPublic:
    info = visible_device(service, principal, device_id)
    severity = service.reads.open_severity().get(device_id)
    base = device_public(info, service.clock_ms(), service.reads.owner(device_id), severity)
    return DeviceDetailPublic(
        **base.model_dump(),
        channels=service.store.channels(device_id),
        predictions=[PredictionPublic.of(d) for d in service.predictions.for_device(device_id)],
        events=service.records.events(device_id, limit=50),
    )


@router.get("/{device_id}/predictions", response_model=list[PredictionPublic])
def device_predictions(
    device_id: str, service: ServiceDep, principal: Reader
) -> list[PredictionPublic]:
    visible_device(service, principal, device_id)
    return [PredictionPublic.of(d) for d in service.predictions.for_device(device_id)]


@router.get("/{device_id}/telemetry", response_model=SeriesPublic)
def telemetry(
    device_id: str,
    channel: Annotated[str, Query(min_length=1, max_length=64)],
    service: ServiceDep,
    principal: Reader,
    start_ms: Annotated[int | None, Query(ge=0, le=2**53)] = None,
    end_ms: Annotated[int | None, Query(ge=0, le=2**53)] = None,
    resolution_s: Annotated[
        int | None, Query(ge=1, le=366 * 86400, description="bucket width")
    ] = None,
    max_points: Annotated[int, Query(ge=1, le=MAX_POINTS)] = 500,
) -> SeriesPublic:
    """Readings of one channel, bucketed into min/mean/max when there are more than fit.

    ``resolution_s`` asks for buckets of that width (at most 10 000 of them); otherwise the
    window is split into at most ``max_points`` buckets. The window defaults to the device's
    known history.
    """
    info = visible_device(service, principal, device_id)
    start = info.first_seen_ms if start_ms is None else start_ms
    end = info.last_seen_ms if end_ms is None else end_ms
    if end < start:
        raise HTTPException(400, "end_ms is before start_ms")
    points = max_points
    if resolution_s is not None:
        points = math.ceil((end - start + 1) / (resolution_s * 1000))
        if points > MAX_POINTS:
            raise HTTPException(
                400, f"resolution_s={resolution_s} gives {points} buckets (at most {MAX_POINTS})"
            )
        # Whole buckets of exactly the asked width, starting at ``start``.
        end = start + points * resolution_s * 1000 - 1
    s = service.store.query(device_id, channel, start, end, points)
    bucketed = s.min is not None
    lo = s.min if s.min is not None else s.values
    hi = s.max if s.max is not None else s.values
    return SeriesPublic(
        device_id=device_id,
        channel=channel,
        bucket_ms=max(1, -(-(end - start + 1) // points)) if bucketed else None,
        ts_ms=[int(t) for t in s.ts_ms.tolist()],
        mean=_floats(s.values),
        min=_floats(lo),
        max=_floats(hi),
    )


def _floats(xs: np.ndarray) -> list[float | None]:
    return [None if not math.isfinite(x) else float(x) for x in xs.tolist()]
