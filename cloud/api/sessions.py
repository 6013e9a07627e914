"""Signed console session cookies and the CSRF tokens bound to them (HMAC-SHA256, stdlib)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Final

SESSION_COOKIE: Final = "fw_session"
LOGIN_COOKIE: Final = "fw_login"  # binds the login form's CSRF token to this browser
SESSION_MAX_AGE_S: Final = 12 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    user_id: int
    nonce: str  # random per sign-in; the CSRF token is derived from it
    issued_s: int


class SessionSigner:
    """Issues and checks ``payload.signature`` cookies; a changed byte or an old cookie fails."""

    def __init__(self, key: bytes, max_age_s: int = SESSION_MAX_AGE_S) -> None:
        if len(key) < 16:
            raise ValueError("session key must have at least 16 bytes")
        self._key = key
        self.max_age_s = max_age_s

    def _sign(self, purpose: str, data: bytes) -> str:
        mac = hmac.new(self._key, purpose.encode() + b"\x00" + data, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def issue(self, user_id: int, now_s: int | None = None) -> tuple[str, Session]:
        session = Session(
            user_id, secrets.token_urlsafe(16), int(time.time() if now_s is None else now_s)
        )
        body = json.dumps({"u": session.user_id, "n": session.nonce, "t": session.issued_s})
        payload = base64.urlsafe_b64encode(body.encode()).rstrip(b"=").decode()
        return f"{payload}.{self._sign('session', payload.encode())}", session

    def read(self, cookie: str | None, now_s: int | None = None) -> Session | None:
        if not cookie or cookie.count(".") != 1 or len(cookie) > 512:
            return None
        payload, signature = cookie.split(".")
        if not hmac.compare_digest(signature, self._sign("session", payload.encode())):
            return None
        try:
            body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            session = Session(int(body["u"]), str(body["n"]), int(body["t"]))
        except (ValueError, KeyError, TypeError):
            return None
        now = int(time.time() if now_s is None else now_s)
        if not 0 <= now - session.issued_s <= self.max_age_s:
            return None
        return session

    def csrf_token(self, nonce: str) -> str:
        """The token a form or ``X-CSRF-Token`` header must carry for this session."""
        return self._sign("csrf", nonce.encode())

    def check_csrf(self, nonce: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf_token(nonce))
