"""Restock orders of vending routes and each route's daily pick list (JSON or CSV)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel

from cloud.actions import restock
from cloud.actions.records import RestockOrder
from cloud.api.auth import Dispatcher, FleetReader
from cloud.api.deps import RowId, ServiceDep
from cloud.api.schemas import iso
from cloud.api.ticket_actions import actor_of
from cloud.errors import RejectedInput

router = APIRouter(prefix="/api/v1/restock", tags=["restock"])


class RestockLinePublic(BaseModel):
    slot: str
    quantity: int


class RestockOrderPublic(BaseModel):
    id: int
    ticket_id: int
    route: str
    device_id: str
    visit_day: str
    stockout_ms: int | None
    stockout_lo_ms: int | None
    stockout: str | None
    score: float
    items: int
    lines: list[RestockLinePublic]
    status: str

    @classmethod
    def of(cls, o: RestockOrder) -> RestockOrderPublic:
        return cls(
            id=o.id, ticket_id=o.ticket_id, route=o.route, device_id=o.device_id,
            visit_day=o.visit_day, stockout_ms=o.stockout_ms, stockout_lo_ms=o.stockout_lo_ms,
            stockout=iso(o.stockout_ms), score=o.score, items=o.items,
            lines=[RestockLinePublic(slot=s, quantity=q) for s, q in o.lines], status=o.status,
        )  # fmt: skip


class PickListPublic(BaseModel):
    route: str
    day: str
    items: int
    stops: list[RestockOrderPublic]
    deferred: int = 0  # due machines left for a later day by max_stops


class CloseOrderRequest(BaseModel):
    delivered: bool = True


@router.get("/routes")
def routes(service: ServiceDep, _: FleetReader) -> list[str]:
    """Routes with open orders."""
    return service.actions.restock.routes()


@router.get("/orders", response_model=list[RestockOrderPublic])
def orders(
    service: ServiceDep,
    _: FleetReader,
    status: Annotated[str | None, Query(description="open | delivered | cancelled")] = "open",
    route: str | None = None,
) -> list[RestockOrderPublic]:
    try:
        found = service.actions.restock.orders(status, route)
    except RejectedInput as exc:
        raise HTTPException(400, str(exc)) from exc
    return [RestockOrderPublic.of(o) for o in found]


@router.get(
    "/pick-list",
    response_model=PickListPublic,
    responses={200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with format=csv"}},
)
def pick_list(
    service: ServiceDep,
    _: FleetReader,
    route: Annotated[str, Query(min_length=1, max_length=64)],
    day: Annotated[str, Query(description="ISO date, e.g. 2026-01-31")],
    format: Literal["json", "csv"] = "json",
    max_stops: Annotated[
        int | None,
        Query(ge=1, description="machines the route can serve: keep the highest route priority"),
    ] = None,
) -> PickListPublic | Response:
    """One route's pre-kit for one day, most urgent machine first."""
    try:
        pick = service.actions.restock.pick_list(route, day, max_stops)
    except RejectedInput as exc:
        raise HTTPException(400, str(exc)) from exc
    if format == "csv":
        return Response(restock.pick_list_csv(pick), media_type="text/csv")
    return PickListPublic(
        route=pick.route, day=pick.day, items=pick.items,
        stops=[RestockOrderPublic.of(o) for o in pick.stops], deferred=pick.deferred,
    )  # fmt: skip


@router.post("/orders/{order_id}/close", response_model=RestockOrderPublic)
def close_order(
    order_id: RowId, body: CloseOrderRequest, service: ServiceDep, principal: Dispatcher
) -> RestockOrderPublic:
    """The driver filled the machine (or the stop was dropped): closes the order and its ticket."""
    try:
        order = service.actions.close_restock(
            order_id, actor=actor_of(principal), delivered=body.delivered
        )
    except RejectedInput as exc:
        raise HTTPException(400, str(exc)) from exc
    return RestockOrderPublic.of(order)
