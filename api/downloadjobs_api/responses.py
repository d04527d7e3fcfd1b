"""
The documented answers of each route: status codes, headers and bodies for the
OpenAPI document, gathered here so every route declares the same ones.
"""

from typing import Any

from downloadjobs_api import schemas

Responses = dict[int | str, dict[str, Any]]


def _header(description: str, kind: str = "string") -> dict[str, Any]:
    return {"description": description, "schema": {"type": kind}}


REQUEST_ID = {"X-Request-ID": _header("The client's request id, or a new UUID.")}
RATE_LIMIT = {
    "RateLimit-Limit": _header("Requests allowed per window for this kind of request.", "integer"),
    "RateLimit-Remaining": _header("Requests left in the current window.", "integer"),
    "RateLimit-Reset": _header("Seconds until the window resets.", "integer"),
}
COMMON = {**REQUEST_ID, **RATE_LIMIT}
POLL_HEADERS = {
    **COMMON,
    "ETag": _header("Weak validator of the job's state; send it back in If-None-Match."),
    "Retry-After": _header(
        "Suggested seconds before the next poll (absent once the job has finished).", "integer"
    ),
    "Cache-Control": _header(
        "private, no-store once the answer carries a download URL; private, no-cache before"
    ),
    "Preference-Applied": _header("wait=N when a long-poll was honoured."),
    "Warning": _header('110 - "Response is Stale" while Kubernetes is unreachable.'),
    "X-Data-Stale": _header("true while the answer may be out of date."),
}


def error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "model": schemas.ErrorResponse,
        "description": description,
        "headers": {**COMMON, **(headers or {})},
    }


RETRY_AFTER = {"Retry-After": _header("Seconds to wait before retrying.", "integer")}
AUTH = {"WWW-Authenticate": _header("Bearer, in token mode.")}

BAD_REQUEST: Responses = {400: error("Invalid request (parameters, headers or body)")}
UNAUTHENTICATED: Responses = {401: error("Missing or invalid credentials", AUTH)}
NOT_FOUND: Responses = {404: error("No such job (or not the caller's)")}
CONFLICT: Responses = {409: error("Not possible in the job's state")}
RATE_LIMITED: Responses = {429: error("Too many requests", RETRY_AFTER)}
UNAVAILABLE: Responses = {503: error("Kubernetes is unreachable; retry later", RETRY_AFTER)}
SERVER_ERROR: Responses = {500: error("Unexpected error (never a stack trace)")}
BODY: Responses = {
    413: error("Body too large"),
    415: error("Body is not JSON"),
}

#: What every route under /v1/ may answer besides its success.
BASE: Responses = {**BAD_REQUEST, **UNAUTHENTICATED, **RATE_LIMITED, **SERVER_ERROR}
READ: Responses = {**BASE, **NOT_FOUND, **UNAVAILABLE}
WRITE: Responses = {**BASE, **BODY}


def ok(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "headers": headers or COMMON}
