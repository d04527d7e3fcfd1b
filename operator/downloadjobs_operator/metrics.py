"""Prometheus metrics of the operator, served on ``metrics_port``."""

import datetime
from collections import Counter as Tally
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from downloadjobs import model, resource

JOBS = Gauge("downloadjobs_jobs", "DownloadJobs by phase.", ["namespace", "phase"])
QUEUE_DEPTH = Gauge("downloadjobs_queue_depth", "DownloadJobs waiting for a slot.", ["namespace"])
OLDEST_QUEUED = Gauge(
    "downloadjobs_oldest_queued_seconds", "Age of the oldest waiting DownloadJob.", ["namespace"]
)
DURATION = Histogram(
    "downloadjobs_job_duration_seconds",
    "From start to end of a job, by outcome.",
    ["phase"],
    buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
RETRIES = Counter("downloadjobs_pod_retries_total", "Worker pods started again after a failure.")
STALLS = Counter("downloadjobs_stalls_total", "Jobs found stalled (stale heartbeat).")
CANCELLED = Counter("downloadjobs_cancelled_total", "Jobs cancelled.")
REUSED = Counter("downloadjobs_reused_total", "Jobs completed at once with a bundle built before.")


def observe_namespace(namespace: str, bodies: list[dict[str, Any]], now: datetime.datetime) -> None:
    """Refresh the per-namespace gauges from a full listing."""
    phases = Tally(resource.phase(b) for b in bodies)
    for phase in model.Phase:
        JOBS.labels(namespace, phase.value).set(phases.get(phase, 0))
    queued = [b for b in bodies if resource.phase(b) is model.Phase.QUEUED]
    QUEUE_DEPTH.labels(namespace).set(len(queued))
    oldest = 0.0
    for body in queued:
        created = resource.created_at(body)
        if created is not None:
            oldest = max(oldest, (now - created).total_seconds())
    OLDEST_QUEUED.labels(namespace).set(oldest)
