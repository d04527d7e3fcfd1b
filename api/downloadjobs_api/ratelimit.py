"""
Per-client rate limits, polls and writes counted apart (so polling never
starves initiation), with the IETF ``RateLimit-*`` headers on every answer but
the probes' and the metrics' and ``429`` plus ``Retry-After`` once a window is
used up. Reads (the page, its static files, the documents, polls) share one
window; writes (POST, DELETE) have the other.

Counting is a fixed window per client in memory: each replica limits on its
own, which bounds the load a client puts on one process. (The ``limits``
library was tried first: its in-memory storage starts a timer thread to expire
counters, measured at one thread start per two polls under load.)
"""

import collections
import hashlib
import math
import re
import threading
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from downloadjobs_api.identity import Identity
from downloadjobs_api.middleware import add_response_headers, send_error

#: Kubelets and Prometheus call these on their own schedule: never limited, no headers.
UNLIMITED = frozenset({"/health", "/ready", "/metrics"})
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


#: Clients counted at once per window; past it the least recently seen is forgotten.
#: About 230 bytes each (a 16-byte digest, its count and the table's links,
#: measured), so each table (polls, writes) stays under 10 MiB however many keys
#: clients make up.
MAX_KEYS = 40_000

_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(\d*)\s*(second|minute|hour|day)s?\s*$")


def _digest(key: str) -> bytes:
    return hashlib.blake2b(key.encode(errors="replace"), digest_size=16).digest()


class FixedWindow:
    """
    ``amount`` hits per ``seconds`` for each key; windows start at multiples of ``seconds``.

    Keys are kept as 16-byte digests, never verbatim, and at most ``max_keys`` of
    them (least recently used out first), so made-up keys cannot grow the table.
    """

    def __init__(self, rate: str, max_keys: int = MAX_KEYS) -> None:
        match = _RATE.match(rate)
        if match is None:
            raise ValueError(f"rate {rate!r}: write it as N/second, N/minute, N/hour or N/day")
        self.amount = int(match.group(1))
        self.seconds = int(match.group(2) or 1) * _UNITS[match.group(3)]
        self.max_keys = max_keys
        self._counts: collections.OrderedDict[bytes, int] = collections.OrderedDict()
        self._window = 0
        self._lock = threading.Lock()

    def hit(self, key: str, now: float) -> tuple[bool, int, float]:
        """Count one hit: (allowed, remaining, when the window resets)."""
        window = int(now // self.seconds)
        digest = _digest(key)
        with self._lock:
            if window != self._window:  # a new window: every client starts afresh
                self._window = window
                self._counts.clear()
            count = self._counts.get(digest, 0)
            allowed = count < self.amount
            if allowed:
                count += 1
            self._counts[digest] = count
            self._counts.move_to_end(digest)
            if len(self._counts) > self.max_keys:
                self._counts.popitem(last=False)
        return allowed, self.amount - count, (window + 1) * self.seconds

    def __len__(self) -> int:
        """Keys counted in the current window."""
        return len(self._counts)

    def __contains__(self, key: str) -> bool:
        return _digest(key) in self._counts


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, identity: Identity, poll_rate: str, write_rate: str) -> None:
        self.app = app
        self.identity = identity
        self.poll = FixedWindow(poll_rate)
        self.write = FixedWindow(write_rate)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED:
            await self.app(scope, receive, send)
            return
        key = self.identity.client_key(scope)
        reads = scope["method"] in _READS
        window = self.poll if reads else self.write
        kind = "poll" if reads else "write"
        now = time.time()
        allowed, remaining, reset_at = window.hit(key, now)
        reset = max(1, math.ceil(reset_at - now))
        extra = [
            (b"ratelimit-limit", str(window.amount).encode()),
            (b"ratelimit-remaining", str(remaining).encode()),
            (b"ratelimit-reset", str(reset).encode()),
        ]
        add_response_headers(scope, extra)
        if not allowed:
            await self._refuse(scope, send, reset, kind)
            return
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope: Scope, send: Send, reset: int, kind: str) -> None:
        what = "polls" if kind == "poll" else "requests that create or change jobs"
        message = f"too many {what}; retry in {reset} s"
        retry_after = [(b"retry-after", str(reset).encode())]
        await send_error(scope, send, 429, "TOO_MANY_REQUESTS", message, retry_after)
