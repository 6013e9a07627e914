"""Liveness, readiness and metrics: what load balancers, orchestrators and Prometheus poll."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import SQLAlchemyError

from cloud.api.auth import FleetReader
from cloud.api.deps import ServiceDep
from cloud.api.metrics import CONTENT_TYPE, render_metrics
from cloud.api.schemas import Health, Readiness

router = APIRouter(tags=["system"])


@router.get("/health", response_model=Health)
def health(service: ServiceDep) -> Health:
    """Liveness: the process answers. No authentication."""
    return Health(status="ok", broker_connected=service.subscriber.connected.is_set())


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "a dependency is down"}},
)
def ready(service: ServiceDep, response: Response) -> Readiness:
    """Readiness: the broker connection is up and the database answers. No authentication."""
    checks = {"broker": "ok" if service.subscriber.connected.is_set() else "not connected"}
    try:
        with service.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except SQLAlchemyError as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    if not ok:
        response.status_code = 503
    return Readiness(ready=ok, checks=checks)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
)
def metrics(request: Request, _: FleetReader) -> Response:
    """Counters and gauges in the Prometheus text format (a read-only token is enough)."""
    return Response(render_metrics(request.app.state.metrics), media_type=CONTENT_TYPE)
