"""The health report: each dependency checked on its own, one failing is enough for 503."""

import logging
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


def check(jobs: JobService, storage: Storage) -> schemas.HealthResponse:
    """
    ``kubernetes`` is the watch's connection and ``cache`` its first full list:
    both are known without a request to the API server.
    """
    checks = {
        "storage": _probe("storage", storage.ping),
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
