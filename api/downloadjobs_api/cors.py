"""
CORS, so that a frontend served from another origin (a React dev server on
``http://localhost:5173``, an app on ``https://app.example.com``) can initiate and
poll, and read the headers the client needs.

Starlette's middleware does the work; the one addition is the original service's
behaviour with ``*``: every answer carries ``Access-Control-Allow-Origin: *``,
whether or not the request had an ``Origin`` header. Credentials are never allowed
(bearer tokens go in ``Authorization``, which the preflight allows; cookies are not
used), so ``*`` is never combined with them.
"""

from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware as StarletteCORSMiddleware
from starlette.types import Message, Send

from downloadjobs_api.settings import ApiSettings

#: Every method of the API (HEAD for the root and the static files).
ALLOW_METHODS = ["GET", "HEAD", "POST", "DELETE"]
#: What the browser client and the React hook send, and what a caller may add.
ALLOW_HEADERS = [
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "If-None-Match",
    "Prefer",
    "X-Request-ID",
    "traceparent",
]
#: The response headers a script on another origin may read (the CORS-safelisted ones,
#: such as Content-Type and Cache-Control, are readable anyway).
EXPOSE_HEADERS = [
    "ETag",
    "Retry-After",
    "Location",
    "X-Request-ID",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "Preference-Applied",
    "X-Data-Stale",
]


class CORSMiddleware(StarletteCORSMiddleware):
    """Starlette's CORS; with ``*``, the allow-origin header on every answer, Origin or not."""

    async def send(self, message: Message, send: Send, request_headers: Headers) -> None:
        if (
            self.allow_all_origins
            and message["type"] == "http.response.start"
            and "origin" not in request_headers
        ):
            message.setdefault("headers", [])
            MutableHeaders(scope=message).update(self.simple_headers)
        await super().send(message, send, request_headers)


def options(settings: ApiSettings) -> dict[str, Any]:
    """The middleware's arguments for ``app.add_middleware(CORSMiddleware, **options)``."""
    return {
        "allow_origins": settings.cors_origins,
        "allow_methods": ALLOW_METHODS,
        "allow_headers": ALLOW_HEADERS,
        "expose_headers": EXPOSE_HEADERS,
        "allow_credentials": False,
        "max_age": settings.cors_max_age,
    }
