"""Who is calling and may they: bearer tokens for the API, session cookies for the console.

A missing, unknown or revoked credential is 401; a role below what the route needs, or a
customer-scoped caller on a fleet-wide route, is 403. A session cookie also works on the API
(the console's scripts use it) but an unsafe method with a cookie needs the session's CSRF token
in ``X-CSRF-Token``: other sites can make a browser send the cookie, never the header.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Final

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cloud.accounts import Principal, Role, principal_of
from cloud.api.deps import ServiceDep
from cloud.api.sessions import SESSION_COOKIE, SessionSigner

SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER: Final = "X-CSRF-Token"

bearer = HTTPBearer(auto_error=False, description="an API token: 'Authorization: Bearer fw_...'")


class LoginRequired(Exception):
    """A console page was asked for without a valid session: the app redirects to the login."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def signer(request: Request) -> SessionSigner:
    s: SessionSigner = request.app.state.signer
    return s


def session_principal(request: Request, service: ServiceDep) -> tuple[Principal, str] | None:
    """The signed-in user of the session cookie and the session's nonce, if valid."""
    session = signer(request).read(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return None
    user = service.accounts.user(session.user_id)
    if user is None or not user.active:
        return None
    return principal_of(user), session.nonce


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def current_principal(
    request: Request,
    service: ServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is not None:
        found = service.accounts.authenticate_token(credentials.credentials)
        if found is None:
            raise _unauthorized("unknown or revoked token")
        return found
    signed_in = session_principal(request, service)
    if signed_in is None:
        raise _unauthorized("authentication required: send 'Authorization: Bearer <token>'")
    principal, nonce = signed_in
    if request.method not in SAFE_METHODS and not signer(request).check_csrf(
        nonce, request.headers.get(CSRF_HEADER)
    ):
        raise HTTPException(403, f"a session needs the {CSRF_HEADER} header for this method")
    return principal


def require(role: Role, *, fleet_wide: bool = False) -> Callable[..., Principal]:
    """A dependency admitting callers with at least ``role``; ``fleet_wide`` also refuses
    customer-scoped callers (for data that belongs to no single customer)."""

    def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.allows(role):
            raise HTTPException(403, f"this needs the {role.value} role or higher")
        if fleet_wide and principal.customer_id is not None:
            raise HTTPException(403, "a customer-scoped credential cannot see fleet-wide data")
        return principal

    return check


def console_principal(request: Request, service: ServiceDep) -> tuple[Principal, str]:
    """The console's signed-in user and the session's CSRF token, or a redirect to the login."""
    signed_in = session_principal(request, service)
    if signed_in is None:
        raise LoginRequired(request.url.path)
    principal, nonce = signed_in
    return principal, signer(request).csrf_token(nonce)


Reader = Annotated[Principal, Depends(require(Role.READ_ONLY))]
FleetReader = Annotated[Principal, Depends(require(Role.READ_ONLY, fleet_wide=True))]
Technician = Annotated[Principal, Depends(require(Role.TECHNICIAN))]
Dispatcher = Annotated[Principal, Depends(require(Role.DISPATCHER, fleet_wide=True))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN, fleet_wide=True))]
ConsoleUser = Annotated[tuple[Principal, str], Depends(console_principal)]
