"""Dead letters, the outbox and counters: what operators inspect and fix."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, HTTPException

from cloud.api.auth import Dispatcher, FleetReader
from cloud.api.deps import Limit, Offset, RowId, ServiceDep
from cloud.api.schemas import DeadLetterPublic, OutboxItemPublic
from cloud.errors import RejectedInput

router = APIRouter(prefix="/api/v1", tags=["operations"])


@router.get("/dead-letters", response_model=list[DeadLetterPublic])
def dead_letters(
    service: ServiceDep,
    _: Dispatcher,
    reason: str | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[DeadLetterPublic]:
    """Rejected messages with their reason and a preview of the payload, newest first."""
    return [DeadLetterPublic.of(d) for d in service.records.dead_letters(limit, offset, reason)]


@router.get("/dead-letters/reasons")
def dead_letter_reasons(service: ServiceDep, _: Dispatcher) -> dict[str, int]:
    """How many messages were rejected, per reason."""
    return service.records.reject_counts()


@router.get("/outbox", response_model=list[OutboxItemPublic])
def outbox(
    service: ServiceDep,
    _: Dispatcher,
    state: str | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[OutboxItemPublic]:
    """Emails and webhooks on their way out; ``state=parked`` lists those that need a human."""
    try:
        items = service.actions.outbox(state, limit, offset)
    except RejectedInput as exc:
        raise HTTPException(400, str(exc)) from exc
    return [OutboxItemPublic.of(i) for i in items]


@router.post("/outbox/{item_id}/requeue")
def requeue(item_id: RowId, service: ServiceDep, _: Dispatcher) -> dict[str, bool]:
    """Send a parked item again."""
    if not service.actions.requeue(item_id):
        raise HTTPException(409, f"outbox item {item_id} does not exist or is not parked")
    return {"requeued": True}


@router.get("/stats")
def stats(service: ServiceDep, _: FleetReader) -> dict[str, Any]:
    """The service's counters: ingest, rejects, store, tickets, emails, outbox."""
    out = service.stats()
    for key, value in list(out.items()):
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out[key] = dataclasses.asdict(value)
    out["actions"] = dataclasses.asdict(service.actions.counts())
    return out
