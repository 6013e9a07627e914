"""Signing in and out of the console: the login form, its CSRF token, the session cookie."""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from typing import Annotated, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cloud.api.auth import ConsoleUser, signer
from cloud.api.deps import ServiceDep
from cloud.api.pages import TEMPLATES, check_form, safe_next
from cloud.api.sessions import LOGIN_COOKIE, SESSION_COOKIE

router = APIRouter(include_in_schema=False)
MAX_FAILURES: Final = 5
FAILURE_WINDOW_S: Final = 900.0


class LoginThrottle:
    """Refuses sign-ins for a username after ``MAX_FAILURES`` wrong passwords within
    ``FAILURE_WINDOW_S``, until the oldest of them is that old. Keyed by name, not by client
    address: behind a proxy every client has the proxy's address."""

    def __init__(self, max_failures: int = MAX_FAILURES, window_s: float = FAILURE_WINDOW_S):
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and now - times[0] > self.window_s:
            times.popleft()
        return times

    def blocked(self, keys: tuple[str, ...], now: float) -> bool:
        with self._lock:
            return any(len(self._recent(k, now)) >= self.max_failures for k in keys)

    def failed(self, keys: tuple[str, ...], now: float) -> None:
        with self._lock:
            for k in keys:
                self._recent(k, now).append(now)

    def succeeded(self, keys: tuple[str, ...]) -> None:
        with self._lock:
            for k in keys:
                self._failures.pop(k, None)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/", error: str | None = None) -> Response:
    nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(16)
    response = TEMPLATES.TemplateResponse(
        request,
        "login.html",
        {"csrf": signer(request).csrf_token("login:" + nonce), "next": safe_next(next),
         "error": error},
    )  # fmt: skip
    response.set_cookie(
        LOGIN_COOKIE, nonce, max_age=3600, httponly=True, samesite="lax",
        secure=request.app.state.secure_cookies,
    )  # fmt: skip
    return response


@router.post("/login")
def login(
    request: Request,
    service: ServiceDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    csrf: Annotated[str, Form(max_length=200)],
    next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not signer(request).check_csrf("login:" + nonce, csrf):
        raise HTTPException(403, "the login form expired: reload the page")
    throttle: LoginThrottle = request.app.state.login_throttle
    keys = ("user:" + username.strip().lower(),)
    now = time.monotonic()
    if throttle.blocked(keys, now):
        raise HTTPException(429, "too many wrong passwords: try again in 15 minutes")
    user = service.accounts.authenticate(username, password)
    if user is None:
        throttle.failed(keys, now)
        query = urlencode({"next": safe_next(next), "error": "wrong username or password"})
        return RedirectResponse(f"/login?{query}", status_code=303)
    throttle.succeeded(keys)
    cookie, _session = signer(request).issue(user.id)
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE, cookie, max_age=signer(request).max_age_s, httponly=True,
        samesite="lax", secure=request.app.state.secure_cookies,
    )  # fmt: skip
    response.delete_cookie(LOGIN_COOKIE)
    return response


@router.post("/logout")
def logout(user: ConsoleUser, csrf: Annotated[str, Form(max_length=200)]) -> Response:
    check_form(user, csrf)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
