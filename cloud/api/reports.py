"""The backtest report viewer: ``forewarn backtest --report`` directories under
``FOREWARN_REPORTS_DIR``, listed and served read-only."""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from cloud.accounts import Role
from cloud.api.auth import ConsoleUser
from cloud.api.deps import ServiceDep
from cloud.api.pages import need, render_page

router = APIRouter(include_in_schema=False)
REPORT_TYPES: Final = {
    ".png": "image/png", ".svg": "image/svg+xml", ".json": "application/json",
    ".csv": "text/csv", ".txt": "text/plain", ".md": "text/plain", ".html": "text/html",
}  # fmt: skip
# A report page may show its plots and its own styles, and nothing may run: the sandbox gives it
# an origin of its own without scripts, forms or the console's cookies.
REPORT_CSP: Final = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"


@router.get("/reports", response_class=HTMLResponse)
def reports(request: Request, service: ServiceDep, user: ConsoleUser) -> HTMLResponse:
    need(user, Role.READ_ONLY, fleet_wide=True)
    root = service.settings.reports_dir
    found: list[dict[str, Any]] = []
    if root is not None and root.is_dir():
        for summary in sorted(root.rglob("*"), key=lambda p: str(p)):
            if summary.is_file() and summary.suffix.lower() in REPORT_TYPES:
                rel = summary.relative_to(root).as_posix()
                found.append({"path": rel, "image": summary.suffix.lower() in (".png", ".svg"),
                              "size": summary.stat().st_size})  # fmt: skip
    groups: dict[str, list[dict[str, Any]]] = {}
    for f in found:
        groups.setdefault(f["path"].rpartition("/")[0] or ".", []).append(f)
    return render_page(request, "reports.html", user, root=root, groups=groups)


@router.get("/reports/file/{path:path}")
def report_file(path: str, service: ServiceDep, user: ConsoleUser) -> Response:
    need(user, Role.READ_ONLY, fleet_wide=True)
    root = service.settings.reports_dir
    if root is None:
        raise HTTPException(404, "no reports directory is configured (FOREWARN_REPORTS_DIR)")
    base = root.resolve()
    target = (base / path).resolve()
    media = REPORT_TYPES.get(target.suffix.lower())
    if not target.is_relative_to(base) or not target.is_file() or media is None:
        raise HTTPException(404, f"no report file {path!r}")
    headers = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": REPORT_CSP}
    return FileResponse(target, media_type=media, headers=headers)
