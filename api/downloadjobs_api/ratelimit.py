"""
Per-client rate limits, polls and writes counted apart (so polling never
starves initiation), with the IETF ``RateLimit-*`` headers on every answer
under ``/v1/`` and ``429`` plus ``Retry-After`` once a window is used up.

Counting is the ``limits`` library's fixed window in memory: each replica
limits on its own, which bounds the load a client puts on one process.
"""

import json
import math
import time

import limits
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from downloadjobs_api.identity import Identity

PREFIX = "/v1/"
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, identity: Identity, poll_rate: str, write_rate: str) -> None:
        self.app = app
        self.identity = identity
        self.limiter = FixedWindowRateLimiter(MemoryStorage())
        self.poll = limits.parse(poll_rate)
        self.write = limits.parse(write_rate)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        client = scope.get("client")
        key = self.identity.client_key(headers, client[0] if client else None)
        reads = scope["method"] in _READS
        item = self.poll if reads else self.write
        kind = "poll" if reads else "write"
        allowed = self.limiter.hit(item, kind, key)
        stats = self.limiter.get_window_stats(item, kind, key)
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        extra = [
            (b"ratelimit-limit", str(item.amount).encode()),
            (b"ratelimit-remaining", str(stats.remaining).encode()),
            (b"ratelimit-reset", str(reset).encode()),
        ]
        if not allowed:
            await self._refuse(scope, send, extra, reset, kind)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    @staticmethod
    async def _refuse(
        scope: Scope, send: Send, extra: list[tuple[bytes, bytes]], reset: int, kind: str
    ) -> None:
        state = scope.get("state", {})
        what = "polls" if kind == "poll" else "requests that create or change jobs"
        body = json.dumps(
            {
                "error": "TOO_MANY_REQUESTS",
                "message": f"too many {what}; retry in {reset} s",
                "requestId": state.get("request_id", ""),
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(reset).encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
