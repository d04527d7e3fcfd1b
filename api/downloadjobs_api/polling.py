"""
What makes a poll cheap: an ETag per job state, the suggested next poll
interval (``Retry-After``) and an estimate of the time left.

All pure functions of a resource body, so they cost no I/O and are unit-tested
directly.
"""

import datetime
import math
from typing import Any

from downloadjobs import model, resource

#: Bounds of the suggested poll interval, in seconds.
MIN_INTERVAL = 1
MAX_INTERVAL = 30
#: A queued job is suggested this many seconds per job ahead of it.
SECONDS_PER_QUEUE_POSITION = 2


def etag(body: dict[str, Any]) -> str:
    """
    A weak validator of the job's state: its resourceVersion. Weak, because the
    presigned URL of a completed job differs between answers while the state
    they describe is the same.
    """
    meta = body["metadata"]
    return f'W/"{meta["name"]}.{meta.get("resourceVersion") or "0"}"'


def matches(if_none_match: str | None, tag: str) -> bool:
    """RFC 9110 weak comparison of ``If-None-Match`` (a list, or ``*``) with ``tag``."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    bare = tag.removeprefix("W/")
    return any(part.strip().removeprefix("W/") == bare for part in if_none_match.split(","))


def eta_seconds(status: model.DownloadJobStatus, now: datetime.datetime) -> int | None:
    """Time left of a processing job, from bytes done over time elapsed since it started."""
    if status.phase is not model.Phase.PROCESSING or status.started_at is None:
        return None
    done, total = status.bytes_done or 0, status.bytes_total
    elapsed = (now - status.started_at).total_seconds()
    if not total or done <= 0 or elapsed <= 0:
        return None
    rate = done / elapsed
    return max(0, math.ceil((total - done) / rate))


def retry_after(phase: model.Phase, queue_position: int | None, eta: int | None) -> int | None:
    """
    The suggested seconds until the next poll, or None for a finished job (no
    need to poll again). Queued: longer the further back in the queue.
    Processing: about a third of the time left, so a poller sees it finish soon
    after it does.
    """
    if phase.terminal:
        return None
    if phase is model.Phase.QUEUED:
        position = queue_position or 1
        return _clamp(SECONDS_PER_QUEUE_POSITION * position)
    if eta is None:
        return 2
    return _clamp(math.ceil(eta / 3))


def _clamp(seconds: int) -> int:
    return max(MIN_INTERVAL, min(MAX_INTERVAL, seconds))


#: At most this many digits in a number of seconds: more is no wait anyone means, and
#: ``int()`` refuses strings of over 4300 digits outright.
_MAX_DIGITS = 9


def parse_seconds(text: str) -> int | None:
    """
    A whole number of seconds written in ASCII digits, or None: total, whatever the text.
    (``str.isdigit()`` accepts digits such as ``¹`` or ``٣`` that ``int()`` refuses or that
    no HTTP client means.)
    """
    if 0 < len(text) <= _MAX_DIGITS and text.isascii() and text.isdigit():
        return int(text)
    return None


def parse_prefer_wait(prefer: str | None) -> int | None:
    """The ``wait`` preference of an RFC 7240 ``Prefer`` header, if any."""
    if not prefer:
        return None
    for preference in prefer.split(","):
        name, _, value = preference.strip().partition("=")
        if name.strip().lower() == "wait":
            return parse_seconds(value.split(";")[0].strip().strip('"'))
    return None


#: For an answer that carries a presigned URL: no cache, shared or private, may keep it.
NO_STORE = "private, no-store"
#: For any other poll: the browser may keep it, revalidating by ETag each time.
NO_CACHE = "private, no-cache"


def cache_control(body: dict[str, Any]) -> str:
    """A completed job's answer carries a presigned URL (its 304 stands for one): never stored."""
    done = resource.phase(body) is model.Phase.COMPLETED and resource.status(body).get("result")
    return NO_STORE if done else NO_CACHE


def retry_after_of(body: dict[str, Any], now: datetime.datetime) -> int | None:
    """
    :func:`retry_after` straight from a resource body, for the 304 answer: the
    cheapest poll should not pay for validating the whole status.
    """
    phase = resource.phase(body)
    started = resource.started_at(body)
    eta = None
    if phase is model.Phase.PROCESSING and started is not None:
        done, total = resource.byte_counts(body)
        status = model.DownloadJobStatus(
            phase=phase, started_at=started, bytes_done=done, bytes_total=total
        )
        eta = eta_seconds(status, now)
    return retry_after(phase, resource.queue_position(body), eta)
