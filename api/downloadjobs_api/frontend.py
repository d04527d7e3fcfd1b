"""
The demo page at ``/`` and its JavaScript client under ``/static``, served by the API.

Serving them from the API's own origin keeps the page's Content-Security-Policy
strict: scripts, styles and requests come from ``'self'`` only, nothing inline,
Trusted Types required. The browser leaves this origin only to download a
finished bundle, which is a navigation to the presigned S3 URL, not a request the
policy governs. ``Cache-Control: no-cache`` makes browsers revalidate (by ETag),
so a new release's client is picked up at the next load.
"""

import os
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent / "static"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)

PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class _StaticFiles(StaticFiles):
    """StaticFiles whose answers carry the page's headers too."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(Headers(PAGE_HEADERS))
        return response


router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> FileResponse:
    """The demo page."""
    return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)


def install(app: FastAPI) -> None:
    """Serve the page at ``/`` and the client files at ``/static``."""
    app.include_router(router)
    app.mount("/static", _StaticFiles(directory=STATIC_DIR), name="static")
