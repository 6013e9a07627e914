"""Current predictions across the fleet: scores, ETAs with intervals, contributions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cloud.api.auth import Reader
from cloud.api.deps import Limit, Offset, ServiceDep
from cloud.api.schemas import PredictionPublic

router = APIRouter(prefix="/api/v1/predictions", tags=["predictions"])


@router.get("", response_model=list[PredictionPublic])
def list_predictions(
    service: ServiceDep,
    principal: Reader,
    kind: str | None = None,
    fault: Annotated[str | None, Query(description="prefix, e.g. 'tyres.pressure'")] = None,
    min_score: Annotated[float, Query(ge=0, le=1)] = 0.0,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[PredictionPublic]:
    """The newest decision of each root cause, newest data first."""
    found = service.predictions.all()
    if principal.customer_id is not None:
        owned = service.reads.owners(principal.customer_id)
        found = [d for d in found if d.device_id in owned]
    found = [
        d
        for d in found
        if (kind is None or d.product_kind == kind)
        and (fault is None or d.fault.startswith(fault))
        and d.score >= min_score
    ]
    return [PredictionPublic.of(d) for d in found[offset : offset + limit]]
