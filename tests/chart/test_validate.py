"""
helm template output, validated strictly: built-in kinds by kubernetes-validate
--strict against current Kubernetes versions, the other kinds by their schemas
(tests/chart/schemas.py), DownloadJobs by the project's CRD.
"""

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from downloadjobs import model
from tests.chart.helpers import (
    NAMESPACE,
    RENDERINGS,
    documents,
    find_tool,
    helm_template,
    run,
    with_worker_job,
)
from tests.chart.schemas import custom_schemas, downloadjob_schema

#: The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and a current one.
KUBERNETES_VERSIONS = ("1.31.0", "1.34.0")
MISSING = re.compile(r"Couldn't find schema for kind (\S+) with api version (\S+) ")


def kubernetes_validate(docs: list[dict[str, Any]], version: str, folder: Path) -> set[str]:
    """Run kubernetes-validate --strict; return the "apiVersion kind" it has no schema for."""
    path = folder / f"rendered-{version}.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    result = run([find_tool("kubernetes-validate"), "--strict", "-k", version, str(path)])
    lines = result.stdout.splitlines()
    errors = [line for line in lines if not line.startswith(("INFO", "WARN"))]
    assert result.returncode == 0 and not errors, result.stdout + result.stderr
    passed = [line for line in lines if " passed for resource " in line]
    unknown = {f"{m[2]} {m[1]}" for line in lines if (m := MISSING.search(line))}
    assert len(passed) + sum(1 for d in docs if f"{d['apiVersion']} {d['kind']}" in unknown) == len(
        docs
    ), result.stdout
    return unknown


@pytest.fixture(scope="module", params=RENDERINGS)
def rendering(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """A rendering with the CRD, plus the worker Job, as the scanners get it."""
    text = helm_template(RENDERINGS[request.param], include_crds=True)
    return with_worker_job(documents(text))


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_rendering_validates_strictly(
    rendering: list[dict[str, Any]], version: str, tmp_path: Path
) -> None:
    unknown = kubernetes_validate(rendering, version, tmp_path)
    schemas = custom_schemas()
    for doc in rendering:
        key = (doc["apiVersion"], doc["kind"])
        if f"{key[0]} {key[1]}" in unknown:
            assert key in schemas, f"no schema for {key}: add one to tests/chart/schemas.py"
            jsonschema.validate(doc, schemas[key])
    kinds = {d["kind"] for d in rendering}
    assert {"CustomResourceDefinition", "Deployment", "Job"} <= kinds


def test_kubernetes_validate_strict_refuses_unknown_fields(tmp_path: Path) -> None:
    """The scanner is not a rubber stamp: a misplaced field fails."""
    docs = documents(helm_template())
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {}
    with pytest.raises(AssertionError, match="securityContex"):
        kubernetes_validate(docs, KUBERNETES_VERSIONS[-1], tmp_path)


def sample_downloadjob() -> dict[str, Any]:
    """A DownloadJob as the API creates it and the operator and worker complete it."""
    spec = model.DownloadJobSpec(file_ids=[70000, 70007], owner="alice")
    status = model.DownloadJobStatus(
        phase=model.Phase.COMPLETED,
        progress=100,
        files_done=2,
        files_total=2,
        bytes_done=10,
        bytes_total=10,
        attempts=1,
        job_name="dj-sample",
        started_at=model.utcnow(),
        completed_at=model.utcnow(),
        result=model.BundleResult(
            bucket="downloads-bundles", key="bundles/x/sample.zip", size=10, sha256="0" * 64
        ),
        conditions=[model.Condition(type="Complete", status="True", reason="Done")],
    )
    return {
        "apiVersion": model.API_VERSION,
        "kind": model.KIND,
        "metadata": {
            "name": "sample",
            "namespace": NAMESPACE,
            "labels": {model.LABEL_MANAGED_BY: model.MANAGED_BY},
        },
        "spec": spec.to_wire(),
        "status": status.to_wire(),
    }


def test_downloadjobs_validate_against_the_charts_crd() -> None:
    schema = downloadjob_schema()
    jsonschema.validate(sample_downloadjob(), schema)
    for broken in (
        {"spec": {"fileIds": []}},
        {"spec": {"fileIds": [70000], "colour": "red"}},
        {"status": {"phase": "Completed", "downloadUrl": "https://leak"}},
    ):
        body = sample_downloadjob()
        for part, value in broken.items():
            body[part] = value
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(body, schema)
