"""Cross-cutting HTTP concerns as plain ASGI middleware: request ids, headers, body limits."""

import logging
import time
import uuid
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from downloadjobs_api import logs
from downloadjobs_api.metrics import Metrics
from downloadjobs_api.schemas import ErrorResponse

access = logging.getLogger("downloadjobs_api.access")

_SAFE_ID = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


#: Where inner middleware leaves headers for the response (``scope["state"]``):
#: one wrapper of ``send`` adds them all, instead of one wrapper per concern.
RESPONSE_HEADERS = "response_headers"


def add_response_headers(scope: Scope, headers: list[tuple[bytes, bytes]]) -> None:
    """Have :class:`RequestIdMiddleware` add ``headers`` to the response."""
    scope.setdefault("state", {}).setdefault(RESPONSE_HEADERS, []).extend(headers)


class RequestIdMiddleware:
    """
    Every response carries ``X-Request-ID`` (the client's, if sane, or a new
    UUID), the security headers and those inner middleware asked for (see
    :func:`add_response_headers`); every log line written while serving the
    request carries the id; each request is counted in the metrics and, as
    ``access_log`` says, logged.

    All of it happens in one layer: every layer costs each request a call, and
    polls are cheap enough for that to show.
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        hsts_max_age: int = 31536000,
        csp: str = "",
        access_log: str = "all",
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self.security = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
        ]
        if hsts_max_age:
            self.security.append((b"strict-transport-security", f"max-age={hsts_max_age}".encode()))
        self.csp = [(b"content-security-policy", csp.encode())] if csp else []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = Headers(scope=scope).get("x-request-id", "")
        rid = sent if sent and len(sent) <= 128 and set(sent) <= _SAFE_ID else str(uuid.uuid4())
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        token = logs.request_id.set(rid)
        extra = [(b"x-request-id", rid.encode()), *self.security, *self.csp]
        started = time.perf_counter()
        code = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
                headers = list(message.get("headers", []))
                # A response that sets its own policy (the demo page's) keeps it.
                present = {name.lower() for name, _ in headers}
                headers += [h for h in extra if h[0] not in present]
                headers += state.get(RESPONSE_HEADERS, ())
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            duration = time.perf_counter() - started
            self.metrics.observe(scope, code, duration)
            if self._loggable(scope["method"], code):
                self._log(scope, code, duration)
            logs.request_id.reset(token)

    def _loggable(self, method: str, code: int) -> bool:
        if self.access_log == "all":
            return True
        if self.access_log == "none":
            return False
        return method not in ("GET", "HEAD", "OPTIONS") or code >= 400

    @staticmethod
    def _log(scope: Scope, code: int, duration: float) -> None:
        access.info(
            "%s %s %s",
            scope["method"],
            scope["path"],
            code,
            extra={
                "method": scope["method"],
                "path": scope["path"],
                "status": code,
                "durationMs": round(duration * 1000, 2),
            },
        )


class BodyLimitMiddleware:
    """
    Refuse bodies over ``limit`` bytes with 413, whether declared or streamed.

    The body is read here (it is small by construction) and replayed to the app,
    so an oversized stream is cut before any handler parses it.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(scope, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        message = f"the request body is larger than {self.limit} bytes"
        await send_error(scope, send, 413, "PAYLOAD_TOO_LARGE", message)


async def send_error(
    scope: Scope,
    send: Send,
    status: int,
    error: str,
    message: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """The error envelope ``{error, message, requestId}``, sent by a middleware."""
    state: dict[str, Any] = scope.get("state", {})
    envelope = ErrorResponse(error=error, message=message, requestId=state.get("request_id", ""))
    body = envelope.model_dump_json().encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
