"""The health report: each dependency checked on its own, one failing is enough for 503."""

import logging
import threading
import time
from collections.abc import Callable

from downloadjobs_api import schemas
from downloadjobs_api.jobs import JobService
from downloadjobs_api.storage import Storage

log = logging.getLogger(__name__)


def _probe(name: str, fn: Callable[[], None]) -> str:
    try:
        fn()
    except Exception as exc:
        log.warning("health check %s failed: %s", name, exc)
        return "error"
    return "ok"


#: How long a storage probe's answer stands: /health is neither limited nor
#: authenticated, so each call must not cost an S3 request.
STORAGE_PROBE_SECONDS = 5.0


class CachedProbe:
    """One dependency probed at most once per ``seconds``; callers in between get that answer."""

    def __init__(
        self,
        name: str,
        fn: Callable[[], None],
        seconds: float = STORAGE_PROBE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._fn = fn
        self._seconds = seconds
        self._clock = clock
        self._answer: tuple[float, str] | None = None
        # Held during the probe: a burst of calls makes one request, not one each.
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            now = self._clock()
            if self._answer is not None and now - self._answer[0] < self._seconds:
                return self._answer[1]
            result = _probe(self.name, self._fn)
            self._answer = (now, result)
            return result


def storage_probe(storage: Storage) -> CachedProbe:
    return CachedProbe("storage", storage.ping)


def check(jobs: JobService, storage: Callable[[], str]) -> schemas.HealthResponse:
    """
    ``storage`` is its (cached) probe; ``kubernetes`` is the watch's connection and
    ``cache`` its first full list: both are known without a request to the API server.
    """
    checks = {
        "storage": storage(),
        "kubernetes": "ok" if jobs.cache.connected else "error",
        "cache": "ok" if jobs.cache.synced.is_set() else "error",
    }
    healthy = all(v == "ok" for v in checks.values())
    return schemas.HealthResponse(
        status="healthy" if healthy else "unhealthy",
        checks=checks,
    )


def ready(jobs: JobService) -> schemas.HealthResponse:
    """
    Ready once the cache has synced, and ready still while the watch is down:
    the cache answers polls (marked stale), which beats no answer at all.
    """
    synced = jobs.cache.synced.is_set()
    return schemas.HealthResponse(
        status="healthy" if synced else "unhealthy",
        checks={"cache": "ok" if synced else "error"},
    )
