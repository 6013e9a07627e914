"""Tickets with their events: list with filters and pages, and the lifecycle actions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from cloud.accounts import Principal
from cloud.api.auth import Dispatcher, Reader, Technician
from cloud.api.deps import Limit, Offset, RowId, ServiceDep
from cloud.api.schemas import (
    AssignRequest,
    ResolveRequest,
    TicketDetailPublic,
    TicketPage,
    TicketPublic,
    TransitionRequest,
)
from cloud.api.ticket_actions import apply_action
from cloud.readmodel import TicketFilter
from cloud.service import CloudService

router = APIRouter(prefix="/api/v1/tickets", tags=["tickets"])
OPEN = ("new", "assigned", "en_route", "on_site")


def ticket_filter(
    principal: Principal,
    status: list[str] | None,
    device_id: str | None,
    action: str | None,
    priority: str | None,
) -> TicketFilter:
    statuses: list[str] = []
    for s in status or ():
        statuses.extend(OPEN if s == "open" else (s,))
    return TicketFilter(
        status=tuple(statuses),
        device_id=device_id,
        action=action,
        priority=priority,
        customer_id=principal.customer_id,
    )


@router.get("", response_model=TicketPage)
def list_tickets(
    service: ServiceDep,
    principal: Reader,
    status: Annotated[
        list[str] | None, Query(description="repeatable; 'open' means every open status")
    ] = None,
    device_id: str | None = None,
    action: Annotated[str | None, Query(description="dispatch | restock | advice")] = None,
    priority: Annotated[str | None, Query(description="P1 .. P4")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> TicketPage:
    """Newest first. A customer-scoped caller sees tickets of that customer's devices only."""
    where = ticket_filter(principal, status, device_id, action, priority)
    items = service.reads.tickets(where, limit, offset)
    return TicketPage(
        total=service.reads.count_tickets(where),
        limit=limit,
        offset=offset,
        items=[TicketPublic.of(t) for t in items],
    )


def visible_ticket(service: CloudService, principal: Principal, ticket_id: int) -> None:
    """404 unless the ticket exists and the caller may see it."""
    exists, customer_id = service.reads.ticket_customer(ticket_id)
    if not exists or (principal.customer_id is not None and customer_id != principal.customer_id):
        raise HTTPException(404, f"no ticket {ticket_id}")


@router.get("/{ticket_id}", response_model=TicketDetailPublic)
def get_ticket(ticket_id: RowId, service: ServiceDep, principal: Reader) -> TicketDetailPublic:
    """One ticket with its events, oldest event first."""
    visible_ticket(service, principal, ticket_id)
    found = service.actions.ticket(ticket_id)
    if found is None:
        raise HTTPException(404, f"no ticket {ticket_id}")
    return TicketDetailPublic.of(found)


def _act(
    service: CloudService, principal: Principal, ticket_id: int, verb: str, **kw: object
) -> TicketDetailPublic:
    visible_ticket(service, principal, ticket_id)
    apply_action(service, principal, ticket_id, verb, **kw)  # type: ignore[arg-type]
    found = service.actions.ticket(ticket_id)
    if found is None:
        raise HTTPException(404, f"no ticket {ticket_id}")
    return TicketDetailPublic.of(found)


@router.post("/{ticket_id}/assign", response_model=TicketDetailPublic)
def assign(
    ticket_id: RowId, body: AssignRequest, service: ServiceDep, principal: Dispatcher
) -> TicketDetailPublic:
    """Give the ticket to an active technician, optionally with a booked visit slot."""
    return _act(
        service, principal, ticket_id, "assign", technician_id=body.technician_id,
        booked_start_ms=body.booked_start_ms, booked_end_ms=body.booked_end_ms,
    )  # fmt: skip


@router.post("/{ticket_id}/acknowledge", response_model=TicketDetailPublic)
def acknowledge(ticket_id: RowId, service: ServiceDep, principal: Technician) -> TicketDetailPublic:
    """Someone has seen it: reminders and escalation stop."""
    return _act(service, principal, ticket_id, "acknowledge")


@router.post("/{ticket_id}/transition", response_model=TicketDetailPublic)
def transition(
    ticket_id: RowId, body: TransitionRequest, service: ServiceDep, principal: Technician
) -> TicketDetailPublic:
    """Move along the lifecycle (en_route, on_site, closed_incomplete; new and cancelled need
    a dispatcher). Illegal steps are 409."""
    return _act(service, principal, ticket_id, "transition", status=body.status, note=body.note)


@router.post("/{ticket_id}/resolve", response_model=TicketDetailPublic)
def resolve(
    ticket_id: RowId, body: ResolveRequest, service: ServiceDep, principal: Technician
) -> TicketDetailPublic:
    """Close as resolved with a closure code (fault_confirmed or no_fault_found)."""
    return _act(
        service, principal, ticket_id, "resolve", closure_code=body.closure_code, note=body.note
    )
