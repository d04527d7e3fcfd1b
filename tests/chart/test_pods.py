"""
Every pod the chart runs, and every pod the operator will run, meets the restricted
Pod Security Standard; and the operator's Job manifests match the chart's.
"""

from typing import Any

import pytest

from downloadjobs.settings import S3Settings
from downloadjobs_api.settings import ApiSettings
from downloadjobs_operator import manifests
from downloadjobs_operator.settings import OperatorSettings
from tests.chart.helpers import FULLNAME, NAMESPACE, find, pod_specs, render, worker_job

RENDERING_NAMES = ("default", "all-on")


@pytest.fixture(params=RENDERING_NAMES)
def docs(request: pytest.FixtureRequest, renderings: dict[str, Any]) -> list[dict[str, Any]]:
    rendering: list[dict[str, Any]] = renderings[request.param]
    return rendering


def test_chart_security_contexts_are_the_operators(docs: list[dict[str, Any]]) -> None:
    specs = pod_specs(docs)
    assert set(specs) == {
        f"Deployment/{FULLNAME}-api",
        f"Deployment/{FULLNAME}-operator",
        f"Job/{FULLNAME}-worker-template",
    }
    for name, spec in specs.items():
        assert spec["securityContext"] == manifests.POD_SECURITY_CONTEXT, name
        for container in spec["containers"]:
            assert container["securityContext"] == manifests.CONTAINER_SECURITY_CONTEXT, name


def test_every_pod_meets_the_restricted_pod_security_standard(docs: list[dict[str, Any]]) -> None:
    for name, spec in pod_specs(docs).items():
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, name
        assert pod_sc["runAsUser"] > 0, name
        assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault", name
        assert not {"hostNetwork", "hostPID", "hostIPC"} & set(spec), name
        tmp_volumes = [v for v in spec["volumes"] if v["name"] == "tmp"]
        assert tmp_volumes and "emptyDir" in tmp_volumes[0], f"{name}: no emptyDir for /tmp"
        assert "initContainers" not in spec, name
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert sc.get("privileged", False) is False, name
            resources = container["resources"]
            for kind in ("requests", "limits"):
                assert set(resources[kind]) >= {"cpu", "memory"}, f"{name}: {kind}"
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], name
            assert not [p for p in container.get("ports", []) if "hostPort" in p], name


def test_long_running_pods_have_liveness_and_readiness_probes(docs: list[dict[str, Any]]) -> None:
    for role in ("api", "operator"):
        deployment = find(docs, "Deployment", f"{FULLNAME}-{role}")
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["livenessProbe"], role
        assert container["readinessProbe"], role
    api = find(docs, "Deployment", f"{FULLNAME}-api")["spec"]["template"]["spec"]
    assert api["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/ready"


def _operator_environment(docs: list[dict[str, Any]]) -> dict[str, str]:
    operator = find(docs, "Deployment", f"{FULLNAME}-operator")
    (container,) = operator["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def _operator_job(docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The Job the operator builds, configured by the environment the chart gives it."""
    for name, value in _operator_environment(docs).items():
        monkeypatch.setenv(name, value)
    body = {"metadata": {"name": "sample", "namespace": NAMESPACE, "uid": "0000"}}
    return manifests.build_job(body, S3Settings.from_environment(), OperatorSettings())


def test_operator_job_pods_get_the_charts_security_context_and_resources(
    docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    built = _operator_job(docs, monkeypatch)["spec"]["template"]["spec"]
    chart = worker_job(docs)["spec"]["template"]["spec"]
    assert built["securityContext"] == chart["securityContext"]
    (built_container,) = built["containers"]
    (chart_container,) = chart["containers"]
    assert built_container["securityContext"] == chart_container["securityContext"]
    assert built_container["resources"] == chart_container["resources"]
    assert built["volumes"] == chart["volumes"]
    assert built_container["volumeMounts"] == chart_container["volumeMounts"]


@pytest.mark.parametrize("rendering", ["default", "all-on"])
def test_chart_worker_job_is_the_operators_job(
    rendering: str, renderings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole Job, less what the operator fills in per DownloadJob."""
    docs = renderings[rendering]
    built = _operator_job(docs, monkeypatch)
    chart = worker_job(docs)
    per_job = {"DOWNLOADJOBS_JOB_NAME", "DOWNLOADJOBS_JOB_NAMESPACE"}
    for job in (built, chart):
        job["spec"]["template"].pop("metadata")
        (container,) = job["spec"]["template"]["spec"]["containers"]
        container["env"] = [e for e in container["env"] if e["name"] not in per_job]
    assert built["spec"] == chart["spec"]


def test_worker_job_settings_follow_the_values() -> None:
    docs = render(
        sets={
            "worker.resources.limits.memory": "1Gi",
            "worker.backoffLimit": "5",
            "s3.existingSecret": "s3-creds",
            "serviceAccounts.worker.name": "custom-worker",
        }
    )
    job = worker_job(docs)
    spec = job["spec"]["template"]["spec"]
    assert job["spec"]["backoffLimit"] == 5
    assert spec["serviceAccountName"] == "custom-worker"
    assert spec["containers"][0]["resources"]["limits"]["memory"] == "1Gi"
    assert spec["containers"][0]["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
    env = _operator_environment(docs)
    assert env["DOWNLOADJOBS_OPERATOR_MEMORY_LIMIT"] == "1Gi"
    assert env["DOWNLOADJOBS_OPERATOR_BACKOFF_LIMIT"] == "5"
    assert env["DOWNLOADJOBS_OPERATOR_S3_SECRET_NAME"] == "s3-creds"
    assert env["DOWNLOADJOBS_OPERATOR_WORKER_SERVICE_ACCOUNT"] == "custom-worker"


def test_s3_credentials_come_only_from_a_secret_or_the_pod_identity(
    docs: list[dict[str, Any]],
) -> None:
    for name, spec in pod_specs(docs).items():
        for container in spec["containers"]:
            names = {e["name"] for e in container.get("env", [])}
            assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & names, name
            for source in container.get("envFrom", []):
                assert set(source) == {"secretRef"}, name
    # The one Secret the chart makes is its own random key of idempotent job names.
    secrets = [doc for doc in docs if doc["kind"] == "Secret"]
    assert [s["metadata"]["name"] for s in secrets] == [f"{FULLNAME}-api-idempotency"]
    assert set(secrets[0]["data"]) == {"secret"}


def test_nginx_ingress_has_the_short_polling_timeouts(all_on_docs: list[dict[str, Any]]) -> None:
    ingress = find(all_on_docs, "Ingress", f"{FULLNAME}-api")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "30"
    assert annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"] == "30"
    assert annotations["nginx.ingress.kubernetes.io/proxy-connect-timeout"] == "5"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": f"{FULLNAME}-api", "port": {"name": "http"}}


def test_every_namespaced_object_names_its_namespace(docs: list[dict[str, Any]]) -> None:
    cluster_scoped = {
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
    for doc in docs:
        if doc["kind"] not in cluster_scoped:
            assert doc["metadata"].get("namespace") == NAMESPACE, doc["metadata"]["name"]


def _api_environment(docs: list[dict[str, Any]]) -> dict[str, str]:
    api = find(docs, "Deployment", f"{FULLNAME}-api")
    (container,) = api["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def test_cors_is_off_by_default_and_the_api_reads_the_values(
    monkeypatch: pytest.MonkeyPatch, all_on_docs: list[dict[str, Any]]
) -> None:
    default = _api_environment(render())
    assert default["DOWNLOADJOBS_API_CORS_ORIGINS"] == "[]"
    assert default["DOWNLOADJOBS_API_CORS_MAX_AGE"] == "600"
    for name, value in _api_environment(all_on_docs).items():
        monkeypatch.setenv(name, value)
    settings = ApiSettings()
    assert settings.cors_origins == ["https://app.example.com"]
    assert settings.cors_max_age == 600
