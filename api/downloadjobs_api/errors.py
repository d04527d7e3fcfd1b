"""
One error envelope for every 4xx and 5xx: ``{error, message, requestId}``.

Validation problems are 400 (as the original service answered), never 422;
unexpected exceptions are a 500 with a generic sentence, never a stack trace.
"""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from downloadjobs_api.idempotency import IdempotencyMismatch
from downloadjobs_api.identity import Unauthenticated
from downloadjobs_api.jobs import JobNotFound, KubernetesUnavailable, TooManyActiveJobs
from downloadjobs_api.paging import InvalidCursor
from downloadjobs_api.poller import BadPollParameter
from downloadjobs_api.presenter import JobConflict
from downloadjobs_api.schemas import ErrorResponse

log = logging.getLogger(__name__)

#: Suggested wait before retrying a 503 (Kubernetes unreachable) or a 429 (too many jobs).
RETRY_AFTER_SECONDS = 5

_CODES = {
    400: "VALIDATION_ERROR",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    401: "UNAUTHENTICATED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "IDEMPOTENCY_KEY_MISMATCH",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


def request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", ""))


def envelope(request: Request, status: int, message: str, error: str | None = None) -> JSONResponse:
    body = ErrorResponse(
        error=error or _CODES.get(status, "ERROR"), message=message, requestId=request_id(request)
    )
    return JSONResponse(body.model_dump(), status_code=status)


def _describe(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    content_type = request.headers.get("content-type", "")
    about_body = any(err.get("loc", ("",))[0] == "body" for err in exc.errors())
    if about_body and "json" not in content_type.split(";")[0]:
        return envelope(request, 415, "the request body must be application/json")
    if any(err.get("type") == "json_invalid" for err in exc.errors()):
        return envelope(request, 400, "the request body is not valid JSON")
    return envelope(request, 400, _describe(exc))


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> set[str]:
    """
    Every method some route of the app takes at the request's path. Starlette's 405
    names only the methods of the first route whose path matched (``GET`` for
    ``/v1/download/jobs/{id}``, which takes ``DELETE`` too, from another route).
    """
    scope = request.scope
    # Each route is asked whether it takes each method here (FastAPI's included routers
    # do not list their routes' methods); a mount takes every method and says so itself.
    routes = [route for route in request.app.router.routes if not isinstance(route, Mount)]
    return {
        method
        for method in _METHODS
        if any(route.matches({**scope, "method": method})[0] is Match.FULL for route in routes)
    }


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    response = envelope(request, exc.status_code, str(exc.detail))
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    if exc.status_code == 405 and (methods := allowed_methods(request)):
        response.headers["Allow"] = ", ".join(sorted(methods))
    return response


async def on_not_found(request: Request, exc: Exception) -> JSONResponse:
    return envelope(request, 404, f"no such job: {exc}")


async def on_conflict(request: Request, exc: Exception) -> JSONResponse:
    return envelope(request, 409, str(exc))


async def on_idempotency(request: Request, exc: Exception) -> JSONResponse:
    return envelope(request, 422, str(exc))


async def on_bad_parameter(request: Request, exc: Exception) -> JSONResponse:
    return envelope(request, 400, str(exc))


async def on_too_many_jobs(request: Request, exc: Exception) -> JSONResponse:
    response = envelope(request, 429, str(exc), error="TOO_MANY_ACTIVE_JOBS")
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


async def on_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("kubernetes unavailable: %s", exc)
    response = envelope(
        request, 503, "the job store is unreachable for now; retry shortly", "SERVICE_UNAVAILABLE"
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


async def on_unauthenticated(request: Request, exc: Exception) -> JSONResponse:
    response = envelope(request, 401, str(exc))
    response.headers["WWW-Authenticate"] = 'Bearer realm="downloadjobs"'
    return response


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error (request %s)", request_id(request))
    return envelope(request, 500, "internal error; quote the request id when reporting it")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(JobNotFound, on_not_found)
    app.add_exception_handler(JobConflict, on_conflict)
    app.add_exception_handler(IdempotencyMismatch, on_idempotency)
    app.add_exception_handler(InvalidCursor, on_bad_parameter)
    app.add_exception_handler(BadPollParameter, on_bad_parameter)
    app.add_exception_handler(TooManyActiveJobs, on_too_many_jobs)
    app.add_exception_handler(KubernetesUnavailable, on_unavailable)
    app.add_exception_handler(Unauthenticated, on_unauthenticated)
    app.add_exception_handler(Exception, on_unexpected)
