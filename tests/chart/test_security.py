"""
What the chart enforces for the API's identities (docs/security.md): header mode
only behind a NetworkPolicy that admits the proxy alone and, with the chart's
Ingress, only with ingress-nginx external auth setting the header; client
addresses only through listed proxies; the idempotency key from a Secret.
"""

from typing import Any

from downloadjobs import statuspolicy
from tests.chart.helpers import CHART, FULLNAME, NAMESPACE, RELEASE, find_tool, render, run

PROXY_ONLY = {
    "networkPolicy.apiIngressFrom[0].podSelector.matchLabels.app": "oauth2-proxy",
}
HEADER = {"api.auth.mode": "header"}


def refused(sets: dict[str, str]) -> str:
    """helm's error when it refuses to render ``sets``; the test fails if it renders."""
    args = [find_tool("helm"), "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for key, value in sets.items():
        args += ["--set", f"{key}={value}"]
    result = run(args)
    assert result.returncode != 0, f"rendered: {sets}"
    return result.stderr


def api_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == f"{FULLNAME}-api"
    )
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def env(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in api_container(docs)["env"]}


def test_header_mode_is_refused_while_anyone_can_reach_the_api() -> None:
    assert "apiIngressFrom" in refused(HEADER)
    assert "apiIngressFrom" in refused({**HEADER, **PROXY_ONLY, "networkPolicy.enabled": "false"})
    docs = render(sets={**HEADER, **PROXY_ONLY})
    assert env(docs)["DOWNLOADJOBS_API_AUTH_MODE"] == "header"


def test_header_mode_behind_the_ingress_needs_external_auth_that_sets_the_header() -> None:
    with_ingress = {**HEADER, **PROXY_ONLY, "ingress.enabled": "true"}
    assert "authUrl" in refused(with_ingress)
    assert "authUrl" in refused({**with_ingress, "ingress.nginx.enabled": "false"})
    docs = render(
        sets={
            **with_ingress,
            "ingress.nginx.authUrl": "http://oauth2-proxy.auth.svc/oauth2/auth",
            "api.auth.identityHeader": "X-Auth-Request-User",
        }
    )
    ingress = next(d for d in docs if d["kind"] == "Ingress")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/auth-url"].endswith("/oauth2/auth")
    # ingress-nginx sets each auth response header on the proxied request, replacing
    # whatever value the client sent under that name.
    assert annotations["nginx.ingress.kubernetes.io/auth-response-headers"] == (
        "X-Auth-Request-User"
    )


def test_the_proxy_secret_comes_from_a_secret_file() -> None:
    docs = render(sets={**HEADER, **PROXY_ONLY, "api.auth.proxySecret": "proxy-secret"})
    variables = env(docs)
    assert variables["DOWNLOADJOBS_API_PROXY_SECRET_FILE"] == "/etc/downloadjobs/proxy/proxy-secret"
    assert "DOWNLOADJOBS_API_PROXY_SECRET" not in variables
    pod = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-api")
    )
    volumes = {v["name"]: v for v in pod["spec"]["template"]["spec"]["volumes"]}
    assert volumes["proxy-secret"]["secret"]["secretName"] == "proxy-secret"


def test_forwarded_allow_ips_refuses_any_client() -> None:
    for value in ("*", "10.0.0.0/8\\,*", "proxy.example.com"):
        assert "forwardedAllowIps" in refused({"api.forwardedAllowIps": value})
    docs = render(sets={"api.forwardedAllowIps": "10.42.0.0/16"})
    variables = env(docs)
    assert variables["DOWNLOADJOBS_API_FORWARDED_ALLOW_IPS"] == "10.42.0.0/16"
    assert "FORWARDED_ALLOW_IPS" not in variables, "uvicorn's own would trust it twice"


def test_idempotent_names_are_keyed_by_a_secret_of_the_release() -> None:
    docs = render()
    secret = next(d for d in docs if d["kind"] == "Secret")
    assert secret["metadata"]["name"] == f"{FULLNAME}-api-idempotency"
    assert len(secret["data"]["secret"]) >= 64  # 48 random characters, base64
    variables = env(docs)
    assert variables["DOWNLOADJOBS_API_IDEMPOTENCY_SECRET_FILE"] == (
        "/etc/downloadjobs/idempotency/secret"
    )
    assert variables["DOWNLOADJOBS_API_MAX_CONNECTIONS"] == "2000"
    assert variables["DOWNLOADJOBS_API_MAX_LONG_POLLS_PER_OWNER"] == "10"


def test_the_worker_status_policy_is_the_one_proven_on_the_api_server() -> None:
    """The chart's policy is statuspolicy's, which tests/e2e proves on kube-apiserver."""
    docs = render()
    policy = next(d for d in docs if d["kind"] == "ValidatingAdmissionPolicy")
    binding = next(d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding")
    expected = statuspolicy.policy(policy["metadata"]["name"], f"{FULLNAME}-worker")
    assert policy["spec"] == expected["spec"]
    name = policy["metadata"]["name"]
    assert binding["spec"] == statuspolicy.binding(name, name)["spec"]
    assert name == f"{NAMESPACE}-{FULLNAME}-worker-status"
    off = render(sets={"worker.statusPolicy": "false"})
    assert not [d for d in off if d["kind"].startswith("ValidatingAdmissionPolicy")]
