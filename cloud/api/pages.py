"""What every console page shares: templates, the page renderer, form and role checks."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from cloud.accounts import Principal, Role
from cloud.api.schemas import iso

PAGE: Final = 50  # rows per page of every console table
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
TEMPLATES.env.filters["iso"] = iso


def _pager(params: Any, offset: int) -> str:
    """The current query string with another ``offset``."""
    items = [(k, v) for k, v in params.multi_items() if k != "offset"]
    return urlencode([*items, ("offset", str(max(0, offset)))])


TEMPLATES.env.filters["pager"] = _pager


def render_page(
    request: Request, name: str, user: tuple[Principal, str], **context: Any
) -> HTMLResponse:
    principal, csrf = user
    return TEMPLATES.TemplateResponse(
        request, name, {"me": principal, "csrf": csrf, "Role": Role, **context}
    )


# A path on this site: printable ASCII without spaces, and not ``//host`` or ``/\host`` (which
# browsers read as another host, also after dropping tabs and line breaks).
_LOCAL_PATH: Final = re.compile(r"/(?![/\\])[\x21-\x7e]*")


def safe_next(path: str) -> str:
    """Only paths of this site: never an open redirect to another host."""
    return path if _LOCAL_PATH.fullmatch(path) and "\\" not in path else "/"


def check_form(user: tuple[Principal, str], token: str) -> None:
    if not secrets.compare_digest(token.encode(), user[1].encode()):
        raise HTTPException(403, "the form expired: reload the page")


def need(user: tuple[Principal, str], role: Role, *, fleet_wide: bool = False) -> None:
    principal = user[0]
    if not principal.allows(role) or (fleet_wide and principal.customer_id is not None):
        raise HTTPException(403, f"this page needs the {role.value} role")
