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
    checks = {"storage": _probe("storage", storage.ping), "kubernetes": _probe("kube", jobs.ping)}
    healthy = all(v == "ok" for v in checks.values())
    return schemas.HealthResponse(
        status="healthy" if healthy else "unhealthy",
        checks=checks,
    )
