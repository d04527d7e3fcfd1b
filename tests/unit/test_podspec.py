"""The node agent's kubelet rules, without a server: environment, argv, phases, status."""

from typing import Any

import pytest

from downloadjobs_embedded import podspec

SECRETS = {("Secret", "ns", "s3"): {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "key"}}
CONFIGMAPS = {("ConfigMap", "ns", "settings"): {"LEVEL": "debug"}}


def lookup(kind: str, namespace: str, name: str, key: str | None) -> Any:
    data = {**SECRETS, **CONFIGMAPS}.get((kind, namespace, name))
    if data is None or key is None:
        return data
    return data.get(key)


def pod(container: dict[str, Any], restart_policy: str = "Never") -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "w"}},
        "spec": {
            "nodeName": "embedded",
            "serviceAccountName": "worker",
            "restartPolicy": restart_policy,
            "containers": [{"name": "worker", "image": "img", **container}],
        },
        "status": {"podIP": "127.0.1.3"},
    }


def test_env_from_values_secrets_configmaps_and_fields_in_kubelet_order() -> None:
    container = {
        "envFrom": [{"secretRef": {"name": "s3"}}, {"configMapRef": {"name": "settings"}}],
        "env": [
            {"name": "LEVEL", "value": "info"},  # env wins over envFrom
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {
                "name": "KEY",
                "valueFrom": {"secretKeyRef": {"name": "s3", "key": "AWS_ACCESS_KEY_ID"}},
            },
            {"name": "URL", "value": "http://$(IP):80/$(NAME)/$(UNKNOWN)/$$(NAME)"},
        ],
    }
    body = pod(container)
    env = podspec.container_env(body, body["spec"]["containers"][0], lookup, {"PATH": "/bin"})
    assert env["PATH"] == "/bin"
    assert env["AWS_SECRET_ACCESS_KEY"] == "key"
    assert env["LEVEL"] == "info"
    assert (env["NAME"], env["APP"], env["IP"], env["KEY"]) == ("p", "w", "127.0.1.3", "id")
    assert env["URL"] == "http://127.0.1.3:80/p/$(UNKNOWN)/$(NAME)"


def test_a_missing_secret_is_a_config_error_unless_optional() -> None:
    missing = {"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}
    body = pod({"env": [missing]})
    with pytest.raises(podspec.ConfigError, match="nope"):
        podspec.container_env(body, body["spec"]["containers"][0], lookup, {})
    missing["valueFrom"]["secretKeyRef"]["optional"] = True  # type: ignore[index]
    assert "X" not in podspec.container_env(body, body["spec"]["containers"][0], lookup, {})
    body = pod({"envFrom": [{"configMapRef": {"name": "nope"}}]})
    with pytest.raises(podspec.ConfigError, match="not found"):
        podspec.container_env(body, body["spec"]["containers"][0], lookup, {})


def test_argv_is_command_then_args_expanded_and_an_image_entrypoint_is_refused() -> None:
    container = {"command": ["downloadjobs"], "args": ["worker", "--job=$(JOB)"]}
    assert podspec.container_argv(container, {"JOB": "j1"}) == [
        "downloadjobs",
        "worker",
        "--job=j1",
    ]
    with pytest.raises(podspec.ConfigError, match="command"):
        podspec.container_argv({"image": "x"}, {})


@pytest.mark.parametrize(
    ("policy", "code", "restarts", "phase"),
    [
        ("Never", 0, False, "Succeeded"),
        ("Never", 1, False, "Failed"),
        ("OnFailure", 0, False, "Succeeded"),
        ("OnFailure", 137, True, "Failed"),
        ("Always", 0, True, "Failed"),
    ],
)
def test_restart_policy_and_final_phase(policy: str, code: int, restarts: bool, phase: str) -> None:
    body = pod({}, policy)
    assert podspec.restarts(body, code) is restarts
    assert podspec.final_phase(body, code) == phase


def test_statuses_carry_what_the_job_controller_and_the_client_read() -> None:
    body = pod({})
    running = podspec.running_status(body, "127.0.1.3", "2026-01-01T00:00:00Z", 0, "embedded://u")
    assert running["phase"] == "Running" and running["podIP"] == "127.0.1.3"
    (status,) = running["containerStatuses"]
    assert status["state"]["running"] and status["ready"] and status["image"] == "img"
    terminated = podspec.terminated_state(3, "2026-01-01T00:00:00Z", "embedded://u")
    final = podspec.terminated_status(body, terminated, 0, "Failed")
    (status,) = final["containerStatuses"]
    assert status["state"]["terminated"]["exitCode"] == 3
    assert status["state"]["terminated"]["reason"] == "Error"
    ready = {c["type"]: c["status"] for c in final["conditions"]}
    assert ready["Ready"] == "False" and ready["Initialized"] == "True"


def test_the_projected_token_volume_is_found() -> None:
    body = pod({})
    assert podspec.token_projection(body) is None
    body["spec"]["volumes"] = [
        {"name": "tmp", "emptyDir": {}},
        {
            "name": "kube-api-access-x",
            "projected": {
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt"}},
                ]
            },
        },
    ]
    assert podspec.token_projection(body) == (
        "kube-api-access-x",
        {"expirationSeconds": 3607, "path": "token"},
    )
