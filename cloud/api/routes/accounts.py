"""Users and API tokens (admin only), and who the caller is."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from cloud.api.auth import Admin, Reader
from cloud.api.deps import RowId, ServiceDep
from cloud.api.schemas import (
    MePublic,
    TokenCreate,
    TokenCreated,
    TokenPublic,
    UserCreate,
    UserPublic,
)
from cloud.errors import RejectedInput

router = APIRouter(prefix="/api/v1", tags=["accounts"])


@router.get("/me", response_model=MePublic)
def me(principal: Reader) -> MePublic:
    return MePublic(
        kind=principal.kind,
        name=principal.name,
        role=principal.role,
        customer_id=principal.customer_id,
    )


@router.get("/users", response_model=list[UserPublic])
def list_users(service: ServiceDep, _: Admin) -> list[UserPublic]:
    return [UserPublic.of(u) for u in service.accounts.users()]


@router.post("/users", response_model=UserPublic, status_code=201)
def create_user(body: UserCreate, service: ServiceDep, _: Admin) -> UserPublic:
    try:
        user = service.accounts.create_user(
            body.username, body.password, body.role, body.customer_id
        )
    except RejectedInput as exc:
        raise HTTPException(400, str(exc)) from exc
    return UserPublic.of(user)


@router.get("/tokens", response_model=list[TokenPublic])
def list_tokens(service: ServiceDep, _: Admin) -> list[TokenPublic]:
    return [TokenPublic.of(t) for t in service.accounts.tokens()]


@router.post("/tokens", response_model=TokenCreated, status_code=201)
def create_token(body: TokenCreate, service: ServiceDep, admin: Admin) -> TokenCreated:
    """A new token; its secret is in this response only."""
    try:
        token, secret = service.accounts.create_token(
            body.name, body.role, body.customer_id, created_by=admin.name
        )
    except RejectedInput as exc:
        raise HTTPException(400, str(exc)) from exc
    return TokenCreated(**TokenPublic.of(token).model_dump(), token=secret)


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: RowId, service: ServiceDep, _: Admin) -> None:
    if not service.accounts.revoke_token(token_id):
        raise HTTPException(404, f"no active token {token_id}")
