"""Ticket actions for the API and the console: who may do what, and the service call it makes."""

from __future__ import annotations

from typing import Final

from fastapi import HTTPException

from cloud.accounts import Principal, Role
from cloud.actions.records import Ticket
from cloud.actions.tickets import CLOSURE_CODES, IllegalTransition
from cloud.errors import RejectedInput
from cloud.service import CloudService

# What each action needs. Technicians move their tickets along; dispatchers also assign them,
# send them back to the queue or cancel them.
VERB_ROLES: Final = {
    "assign": Role.DISPATCHER,
    "acknowledge": Role.TECHNICIAN,
    "transition": Role.TECHNICIAN,
    "resolve": Role.TECHNICIAN,
}
DISPATCHER_STATUSES: Final = frozenset({"new", "cancelled"})

__all__ = ["CLOSURE_CODES", "VERB_ROLES", "actor_of", "apply_action"]


def actor_of(principal: Principal) -> str:
    """How a ticket's history names who did it: ``user:alice`` or ``token:erp-sync``."""
    return f"{principal.kind}:{principal.name}"[:64]


def apply_action(
    service: CloudService,
    principal: Principal,
    ticket_id: int,
    verb: str,
    *,
    technician_id: str | None = None,
    status: str | None = None,
    closure_code: str | None = None,
    note: str | None = None,
    booked_start_ms: int | None = None,
    booked_end_ms: int | None = None,
) -> Ticket:
    """Run one action; 403 for a role too low, 409 for an illegal step, 400 for refused values."""
    needed = VERB_ROLES.get(verb)
    if needed is None:
        raise HTTPException(404, f"no ticket action {verb!r}: use {', '.join(VERB_ROLES)}")
    if verb == "transition" and status in DISPATCHER_STATUSES:
        needed = Role.DISPATCHER
    if not principal.allows(needed) or (
        needed is Role.DISPATCHER and principal.customer_id is not None
    ):
        raise HTTPException(403, f"{verb} needs the {needed.value} role or higher")
    actor = actor_of(principal)
    try:
        if verb == "assign":
            if not technician_id:
                raise HTTPException(400, "assign needs a technician_id")
            return service.actions.assign(
                ticket_id, technician_id, actor=actor,
                booked_start_ms=booked_start_ms, booked_end_ms=booked_end_ms,
            )  # fmt: skip
        if verb == "acknowledge":
            return service.actions.acknowledge(ticket_id, actor=actor)
        if verb == "resolve":
            if not closure_code:
                raise HTTPException(
                    400, f"resolve needs a closure_code: {', '.join(CLOSURE_CODES)}"
                )
            return service.actions.move(
                ticket_id, "resolved", actor=actor, closure_code=closure_code, note=note
            )
        if not status:
            raise HTTPException(400, "transition needs a status")
        return service.actions.move(
            ticket_id, status, actor=actor, closure_code=closure_code, note=note
        )
    except IllegalTransition as exc:
        raise HTTPException(409, str(exc)) from exc
    except RejectedInput as exc:
        raise HTTPException(400, str(exc)) from exc
