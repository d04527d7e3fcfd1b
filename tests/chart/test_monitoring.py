"""The alerts and the dashboard use only metrics the operator exports."""

import json
import re
from typing import Any

from prometheus_client.metrics import MetricWrapperBase

from downloadjobs_operator import metrics
from tests.chart.helpers import CHART, FULLNAME, find

SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
METRIC = re.compile(r"\b(downloadjobs_[a-z_]+)\b")


def exported() -> set[str]:
    names = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                names |= {family.name + suffix for suffix in SUFFIXES[family.type]}
    return names


def test_prometheus_rule_alerts_on_failures_queue_age_and_stalls(
    all_on_docs: list[dict[str, Any]],
) -> None:
    rule = find(all_on_docs, "PrometheusRule", FULLNAME)
    alerts = {r["alert"]: r["expr"] for r in rule["spec"]["groups"][0]["rules"]}
    assert {"DownloadJobsFailureRateHigh", "DownloadJobsQueuedTooLong", "DownloadJobsStalled"} <= (
        set(alerts)
    )
    used = {name for expr in alerts.values() for name in METRIC.findall(expr)}
    assert used and used <= exported(), f"not exported: {used - exported()}"
    job = f'job="{FULLNAME}-operator-metrics"'
    assert all(job in expr for expr in alerts.values())


def test_dashboard_uses_exported_metrics() -> None:
    text = (CHART / "dashboards" / "downloadjobs.json").read_text()
    exprs = [t["expr"] for p in json.loads(text)["panels"] for t in p["targets"]]
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    assert used and used <= exported(), f"not exported: {used - exported()}"


def test_service_monitor_scrapes_the_operator_metrics_port(
    all_on_docs: list[dict[str, Any]],
) -> None:
    monitor = find(all_on_docs, "ServiceMonitor", f"{FULLNAME}-operator")
    service = find(all_on_docs, "Service", f"{FULLNAME}-operator-metrics")
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
