"""
checkov --framework kubernetes on both renderings, the worker Job included.

Not ``--framework helm``: without helm on PATH that prints "There are no runners to
run" and exits 0. The chart is rendered with helm here (a missing helm fails in CI)
and the YAML scanned. checkov runs offline: no API key, no downloads
(--skip-download, BC_SKIP_MAPPING), and a scan that checked nothing fails.

A skipped check must be skipped per resource, by a ``checkov.io/skipN`` annotation in
the chart with its reason, and be one of SKIPPABLE.
"""

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.helpers import (
    FULLNAME,
    NAMESPACE,
    RENDERINGS,
    documents,
    find_tool,
    helm_template,
    run,
    with_worker_job,
)

#: The only checks the chart may skip, and why (the reasons are in the chart too).
SKIPPABLE = {
    # The API, the operator and the worker all talk to the Kubernetes API.
    "CKV_K8S_38",
    # S3 credentials from the existing Secret, as environment variables for boto3.
    "CKV_K8S_35",
    # Only while image.digest is empty (the default): pinned by tag, IfNotPresent.
    "CKV_K8S_43",
    "CKV_K8S_15",
}


@pytest.fixture(scope="module", params=RENDERINGS)
def scan(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """checkov's JSON report of one rendering (one checkov run per rendering)."""
    folder: Path = tmp_path_factory.mktemp(f"checkov-{request.param}")
    docs = with_worker_job(documents(helm_template(RENDERINGS[request.param])))
    (folder / "rendered.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BC_", "PRISMA_", "CKV_", "CHECKOV_"))
    }
    env |= {"BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    result = run(
        [
            find_tool("checkov"),
            "--framework",
            "kubernetes",
            "--directory",
            str(folder),
            "--skip-download",
            "--output",
            "json",
        ],
        env=env,
        cwd=folder,
    )
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    assert isinstance(report, dict) and report.get("check_type") == "kubernetes", (
        f"checkov scanned nothing: {result.stdout[:500]} {result.stderr[-2000:]}"
    )
    return request.param, report


def test_no_failed_checks(scan: Any) -> None:
    _, report = scan
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    assert report["summary"]["failed"] == 0
    assert report["summary"]["parsing_errors"] == 0


def test_the_scan_checked_every_workload_the_worker_included(scan: Any) -> None:
    _, report = scan
    assert report["summary"]["passed"] > 200, report["summary"]
    resources = {c["resource"] for c in report["results"]["passed_checks"]}
    for expected in (
        f"Deployment.{NAMESPACE}.{FULLNAME}-api",
        f"Deployment.{NAMESPACE}.{FULLNAME}-operator",
        f"Job.{NAMESPACE}.{FULLNAME}-worker-template",
    ):
        assert expected in resources, f"{expected} was not scanned"
    checked = {c["check_id"] for c in report["results"]["passed_checks"]}
    # A few checks that only pass on a hardened pod: the scan really looked at them.
    assert {"CKV_K8S_20", "CKV_K8S_22", "CKV_K8S_28", "CKV_K8S_31", "CKV_K8S_40"} <= checked


def test_skips_are_per_check_and_resource_with_a_reason(scan: Any) -> None:
    name, report = scan
    for check in report["results"]["skipped_checks"]:
        where = f"{check['check_id']} {check['resource']}"
        assert check["check_id"] in SKIPPABLE, f"unexpected skip: {where}"
        assert len(check["check_result"].get("suppress_comment", "")) > 30, f"no reason: {where}"
    if name == "all-on":  # the image has a digest there: no image skips
        skipped = {c["check_id"] for c in report["results"]["skipped_checks"]}
        assert not skipped & {"CKV_K8S_43", "CKV_K8S_15"}
