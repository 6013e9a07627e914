"""Customer emails: what was queued and sent, to whom, about what."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from cloud.api.auth import Reader
from cloud.api.deps import Limit, Offset, RowId, ServiceDep
from cloud.api.schemas import EmailPublic

router = APIRouter(prefix="/api/v1/emails", tags=["emails"])
EMAIL_STATUSES = ("queued", "sent", "parked")


@router.get("", response_model=list[EmailPublic])
def list_emails(
    service: ServiceDep,
    principal: Reader,
    status: str | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[EmailPublic]:
    """Newest first; a customer-scoped caller sees that customer's emails only."""
    if status is not None and status not in EMAIL_STATUSES:
        raise HTTPException(400, f"status must be one of {', '.join(EMAIL_STATUSES)}")
    found = service.reads.emails(principal.customer_id, status, limit=limit, offset=offset)
    return [EmailPublic.of(e) for e in found]


@router.get("/{email_id}", response_model=EmailPublic)
def get_email(email_id: RowId, service: ServiceDep, principal: Reader) -> EmailPublic:
    found = service.reads.email(email_id)
    if found is None or (
        principal.customer_id is not None and found.customer_id != principal.customer_id
    ):
        raise HTTPException(404, f"no email {email_id}")
    return EmailPublic.of(found)
