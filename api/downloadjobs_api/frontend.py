"""
The root and the demo page: ``/`` answers a browser (a request that prefers
``text/html``) with the demo page and anything else with a JSON index of the service;
the page's JavaScript client is under ``/static``.

Serving them from the API's own origin keeps the page's Content-Security-Policy
strict: scripts, styles and requests come from ``'self'`` only, nothing inline,
Trusted Types required. The browser leaves this origin only to download a
finished bundle, which is a navigation to the presigned S3 URL, not a request the
policy governs. ``Cache-Control: no-cache`` makes browsers revalidate (by ETag),
so a new release's client is picked up at the next load.
"""

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Scope

from downloadjobs_api import responses as r
from downloadjobs_api import schemas

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


HTML = "text/html"
JSON = "application/json"
#: An RFC 9110 qvalue: 0 to 1 with at most three decimals.
_QVALUE = re.compile(r"^(0(\.[0-9]{0,3})?|1(\.0{0,3})?)$")


def _ranges(accept: str) -> list[tuple[str, float]]:
    """The media ranges of an ``Accept`` header with their weights; unreadable ones left out."""
    ranges = []
    for part in accept.split(","):
        media, *parameters = part.split(";")
        media = media.strip().lower()
        if media.count("/") != 1:
            continue
        weight: float | None = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                value = value.strip()
                weight = float(value) if _QVALUE.match(value) else None
        if weight is not None:
            ranges.append((media, weight))
    return ranges


def _weight(media: str, ranges: list[tuple[str, float]]) -> float:
    """The weight of ``media`` by its most specific range (type/subtype, type/*, then */*)."""
    kind = media.split("/")[0]
    for candidate in (media, f"{kind}/*", "*/*"):
        weights = [weight for name, weight in ranges if name == candidate]
        if weights:
            return max(weights)
    return 0.0


def negotiate(accept: str | None, offered: Sequence[str]) -> str:
    """
    Of ``offered``, the media type ``accept`` weighs highest; the first one on a tie,
    without an ``Accept`` header, or when it accepts none of them. Total: any text is read.
    """
    if not accept:
        return offered[0]
    ranges = _ranges(accept)
    best = offered[0]
    for media in offered[1:]:
        if _weight(media, ranges) > _weight(best, ranges):
            best = media
    return best


async def get_representation(request: Request) -> str:
    """JSON, unless the request prefers HTML to it (a browser's ``Accept`` does)."""
    return negotiate(request.headers.get("accept"), [JSON, HTML])


Representation = Annotated[str, Depends(get_representation)]


def service_index(app: FastAPI) -> schemas.ServiceIndex:
    """
    Concrete URLs only: a URI template such as ``/v1/download/jobs/{jobId}`` reads as a
    URL to any client that follows links (schemathesis did, with a job id of "{jobId}").
    """
    return schemas.ServiceIndex(
        name=app.title,
        version=app.version,
        description=app.description,
        links=schemas.IndexLinks(
            docs="/docs",
            openapi="/openapi.json",
            health="/health",
            initiate="/v1/download/initiate",
            jobs="/v1/download/jobs",
        ),
    )


def root_response(representation: str, app: FastAPI) -> Response:
    """The demo page for a browser, the service's JSON index for anyone else."""
    headers = {"Vary": "Accept"}
    if representation == HTML:
        return FileResponse(STATIC_DIR / "index.html", headers={**PAGE_HEADERS, **headers})
    return JSONResponse(service_index(app).model_dump(mode="json"), headers=headers)


router = APIRouter()

ROOT_RESPONSES: r.Responses = {
    200: {
        "description": (
            "The service's JSON index; the demo page (text/html) when the request prefers "
            "HTML, as a browser's Accept header does"
        ),
        "headers": {**r.COMMON, "Vary": r._header("Accept: the answer depends on it.")},
        "content": {HTML: {"schema": {"type": "string"}}},
    },
    **r.RATE_LIMITED,
    **r.SERVER_ERROR,
}


@router.get(
    "/",
    response_model=schemas.ServiceIndex,
    responses=ROOT_RESPONSES,
    operation_id="index",
    tags=["service"],
)
async def index(representation: Representation, request: Request) -> Response:
    """What this service is (JSON), or the demo page for a browser."""
    return root_response(representation, request.app)


@router.head("/", include_in_schema=False)
async def index_head(representation: Representation, request: Request) -> Response:
    """The root's headers, as GET would answer them."""
    return root_response(representation, request.app)


def install(app: FastAPI) -> None:
    """Serve the root (page or index) at ``/`` and the client files at ``/static``."""
    app.include_router(router)
    app.mount("/static", _StaticFiles(directory=STATIC_DIR), name="static")
