"""
Prometheus metrics of the API: requests by route and code, latency, and the
watch cache (its size, how stale it may be, jobs by phase).

Request metrics are recorded by the request-id middleware, keyed by the route's
template (``/v1/download/jobs/{job_id}``), never the raw path, so job ids do not
explode the label space. Cache figures are read when Prometheus scrapes.
"""

import collections
from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import Scope

from downloadjobs import model, resource
from downloadjobs_api.cache import JobCache


class CacheCollector(Collector):
    def __init__(self, cache: JobCache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        size = GaugeMetricFamily("downloadjobs_api_cache_jobs", "DownloadJobs in the watch cache.")
        size.add_metric([], len(self.cache))
        yield size
        lag = GaugeMetricFamily(
            "downloadjobs_api_cache_lag_seconds",
            "How long the watch has been disconnected (0 while watching).",
        )
        lag.add_metric([], self.cache.lag_seconds())
        yield lag
        synced = GaugeMetricFamily(
            "downloadjobs_api_cache_synced", "1 once the first list is loaded and watched."
        )
        synced.add_metric([], 0.0 if self.cache.stale else 1.0)
        yield synced
        phases = collections.Counter(resource.phase(b).value for b in self.cache.values())
        by_phase = GaugeMetricFamily(
            "downloadjobs_api_jobs", "DownloadJobs by phase, as cached.", labels=["phase"]
        )
        for phase in model.Phase:
            by_phase.add_metric([phase.value], phases.get(phase.value, 0))
        yield by_phase


class Metrics:
    """The registry of one app (not the global one: tests build many apps)."""

    def __init__(self, cache: JobCache) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "downloadjobs_api_requests",
            "HTTP requests by route template, method and status code.",
            ["route", "method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "downloadjobs_api_request_duration_seconds",
            "Time to answer, by route template.",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 30),
            registry=self.registry,
        )
        self.registry.register(CacheCollector(cache))

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def observe(self, scope: Scope, code: int, seconds: float) -> None:
        """Count one answered request, labelled by its route's template."""
        path = getattr(scope.get("route"), "path", None)
        route = str(path) if path else "unmatched"
        self.requests.labels(route, scope["method"], str(code)).inc()
        self.latency.labels(route).observe(seconds)
