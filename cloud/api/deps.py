"""Dependencies every route shares: the service, paging, and errors mapped to HTTP."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from cloud.service import CloudService


def get_service(request: Request) -> CloudService:
    service: CloudService = request.app.state.service
    return service


ServiceDep = Annotated[CloudService, Depends(get_service)]
Limit = Annotated[int, Query(ge=1, le=500, description="page size")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="items to skip")]
# Database ids are 64-bit: anything larger cannot name a row (and must not reach the driver).
RowId = Annotated[int, Path(ge=1, le=2**63 - 1, description="row id")]
