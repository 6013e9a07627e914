"""The FastAPI application: ``/api/v1``, the console, health, readiness and metrics."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import secrets
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from cloud.accounts import Role
from cloud.api import console, login, reports
from cloud.api.auth import LoginRequired, require
from cloud.api.metrics import registry_for
from cloud.api.routes import (
    accounts,
    devices,
    emails,
    operations,
    predictions,
    restock,
    system,
    technicians,
    tickets,
)
from cloud.api.sessions import SessionSigner
from cloud.errors import DatabaseUnavailable, RejectedInput
from cloud.logs import configure_logging
from cloud.service import CloudService

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"


def create_app(service: CloudService) -> FastAPI:
    settings = service.settings
    closing = threading.Event()  # ends the console's live streams when the server stops

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # The server configures its own log handlers after the service did: format them too.
        configure_logging(settings.log_format)
        yield
        closing.set()

    app = FastAPI(
        title="forewarn",
        version="1.0.0",
        description=(
            "Predictive service and replenishment: devices, telemetry, predictions, tickets, "
            "emails, restock orders and dead letters. Authenticate with "
            "`Authorization: Bearer <token>` (see `forewarn users token`)."
        ),
        lifespan=lifespan,
    )
    key = settings.secret_key.get_secret_value() if settings.secret_key else None
    if key is None:
        # Development only (production refuses to start without one): sessions end on restart.
        key = secrets.token_urlsafe(32)
    app.state.service = service
    app.state.closing = closing
    app.state.signer = SessionSigner(key.encode())
    app.state.metrics = registry_for(service)
    app.state.secure_cookies = settings.env == "production"
    app.state.login_throttle = login.LoginThrottle()

    routers = (system, accounts, devices, predictions, tickets, technicians, emails, restock)
    for module in (*routers, operations):
        app.include_router(module.router)
    _include_optional_routers(app)
    for pages in (login, console, reports):
        app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(f"/login?next={quote(exc.next_path)}", status_code=303)

    @app.exception_handler(RejectedInput)
    async def _rejected(request: Request, exc: RejectedInput) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(DatabaseUnavailable)
    async def _unavailable(request: Request, exc: DatabaseUnavailable) -> Response:
        log.warning("request failed, database unavailable: %s", exc)
        return JSONResponse(
            {"detail": "database unavailable, try again"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    return app


def _include_optional_routers(app: FastAPI) -> None:
    """Email previews (dispatchers and admins) and the public unsubscribe page, when the
    installed email module provides them."""
    if importlib.util.find_spec("cloud.api.messages") is None:
        return
    messages = importlib.import_module("cloud.api.messages")
    preview = getattr(messages, "preview_router", None)
    if preview is not None:
        app.include_router(
            preview, dependencies=[Depends(require(Role.DISPATCHER, fleet_wide=True))]
        )
    unsubscribe = getattr(messages, "unsubscribe_router", None)
    if unsubscribe is not None:
        app.include_router(unsubscribe)
