"""The technician roster: who tickets can be assigned to, with their region, skills and load."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from cloud.actions.records import Technician
from cloud.api.auth import FleetReader
from cloud.api.deps import ServiceDep

router = APIRouter(prefix="/api/v1/technicians", tags=["technicians"])


class TechnicianPublic(BaseModel):
    id: str
    name: str
    region: str
    skills: list[str]
    tz: str
    work_days: list[int]
    work_start_min: int
    work_end_min: int
    active: bool
    open_tickets: int

    @classmethod
    def of(cls, t: Technician) -> TechnicianPublic:
        return cls(
            id=t.id, name=t.name, region=t.region, skills=list(t.skills), tz=t.tz,
            work_days=list(t.work_days), work_start_min=t.work_start_min,
            work_end_min=t.work_end_min, active=t.active, open_tickets=t.open_tickets,
        )  # fmt: skip


@router.get("", response_model=list[TechnicianPublic])
def list_technicians(
    service: ServiceDep,
    _: FleetReader,
    region: str | None = None,
    active_only: bool = True,
) -> list[TechnicianPublic]:
    """Technicians to assign tickets to, with how many open tickets each already has."""
    found = service.actions.technicians.list(region, active_only=active_only)
    return [TechnicianPublic.of(t) for t in found]
