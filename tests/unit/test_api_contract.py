"""
The API's safety features against a fake Kubernetes API: idempotency, identity
and isolation, the job list, per-owner caps, rate limits, headers, logs, metrics.
"""

import json
import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient

from downloadjobs import model
from downloadjobs.settings import S3Settings
from downloadjobs_api import logs
from downloadjobs_api.jobs import JobService
from downloadjobs_api.settings import ApiSettings
from downloadjobs_cli import dev
from tests.unit.conftest import MakeClient

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def start(client: TestClient, ids: list[int], **headers: str) -> Any:
    return client.post("/v1/download/initiate", json={"file_ids": ids}, headers=headers)


def test_a_job_is_born_with_the_operators_finalizer(make_client: MakeClient) -> None:
    """The operator need not add it (a write and a watch round before its Job)."""
    client, api = make_client()
    job_id = start(client, [70000]).json()["jobId"]
    assert api.created[job_id]["metadata"]["finalizers"] == [model.FINALIZER]


def test_idempotency_key_returns_the_same_job(make_client: MakeClient) -> None:
    client, api = make_client()
    first = start(client, [70000, 70001], **{"Idempotency-Key": "order-42"})
    assert first.status_code == 202
    again = start(client, [70000, 70001], **{"Idempotency-Key": "order-42"})
    assert again.status_code == 200
    assert again.json()["jobId"] == first.json()["jobId"]
    assert again.headers["location"] == first.headers["location"]
    assert len(api.created) == 1
    other = start(client, [70002], **{"Idempotency-Key": "order-42"})
    assert other.status_code == 422 and other.json()["error"] == "IDEMPOTENCY_KEY_MISMATCH"
    assert start(client, [70000, 70001], **{"Idempotency-Key": "order-43"}).status_code == 202
    assert len(api.created) == 2


def test_a_concurrent_duplicate_loses_the_race_at_the_api_server(make_client: MakeClient) -> None:
    """The cache has not seen the first job yet: the create's AlreadyExists decides."""
    client, _api = make_client()
    first = start(client, [70000], **{"Idempotency-Key": "k"})
    jobs: JobService = client.app.state.jobs  # type: ignore[attr-defined]
    jobs.cache.delete(first.json()["jobId"])  # as if another replica had created it
    again = start(client, [70000], **{"Idempotency-Key": "k"})
    assert again.status_code == 200 and again.json()["jobId"] == first.json()["jobId"]


def test_an_expired_idempotency_key_is_refused(make_client: MakeClient) -> None:
    client, api = make_client(idempotency_window_seconds=60)
    job_id = start(client, [70000], **{"Idempotency-Key": "old"}).json()["jobId"]
    api.created[job_id]["metadata"]["annotations"][model.ANNOTATION_SUBMITTED_AT] = (
        "2020-01-01T00:00:00+00:00"
    )
    response = start(client, [70000], **{"Idempotency-Key": "old"})
    assert response.status_code == 422 and "expired" in response.json()["message"]


def test_bad_idempotency_keys_are_400(make_client: MakeClient) -> None:
    client, _ = make_client()
    assert start(client, [70000], **{"Idempotency-Key": "x" * 256}).status_code == 400


def test_token_identity_isolates_owners(make_client: MakeClient) -> None:
    client, api = make_client(auth_mode="token", tokens={"t-alice": "alice", "t-bob": "bob"})
    alice = {"Authorization": "Bearer t-alice"}
    bob = {"Authorization": "Bearer t-bob"}
    missing = start(client, [70000])
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    wrong = start(client, [70000], Authorization="Bearer nope")
    assert wrong.status_code == 401
    job_id = start(client, [70000], **alice).json()["jobId"]
    assert api.created[job_id]["spec"]["owner"] == "alice"
    assert client.get(f"/v1/download/jobs/{job_id}", headers=alice).status_code == 200
    for method, path in [
        ("GET", f"/v1/download/jobs/{job_id}"),
        ("GET", f"/v1/download/status/{job_id}"),
        ("GET", f"/v1/download/jobs/{job_id}/file"),
        ("DELETE", f"/v1/download/jobs/{job_id}"),
        ("POST", f"/v1/download/jobs/{job_id}/retry"),
    ]:
        response = client.request(method, path, headers=bob)
        assert response.status_code == 404, (method, path, response.text)
    assert client.get("/v1/download/jobs", headers=bob).json()["items"] == []
    assert model.ANNOTATION_CANCEL not in api.created[job_id]["metadata"]["annotations"]
    # the same Idempotency-Key of two owners names two jobs
    a = start(client, [70001], **alice, **{"Idempotency-Key": "same"}).json()["jobId"]
    b = start(client, [70001], **bob, **{"Idempotency-Key": "same"}).json()["jobId"]
    assert a != b


def test_tokens_file_and_header_identity(make_client: MakeClient, tmp_path: Any) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"file-token": "carol"}))
    client, api = make_client(auth_mode="token", tokens_file=str(tokens))
    job_id = start(client, [70000], Authorization="Bearer file-token").json()["jobId"]
    assert api.created[job_id]["spec"]["owner"] == "carol"

    client, api = make_client(auth_mode="header", identity_header="X-Auth-Request-User")
    assert start(client, [70000]).status_code == 401
    job_id = start(client, [70000], **{"X-Auth-Request-User": "dora"}).json()["jobId"]
    assert api.created[job_id]["spec"]["owner"] == "dora"
    other = client.get(f"/v1/download/jobs/{job_id}", headers={"X-Auth-Request-User": "eve"})
    assert other.status_code == 404


def test_token_mode_without_tokens_does_not_start(make_client: MakeClient) -> None:
    with pytest.raises(ValueError, match="token"):
        make_client(auth_mode="token")


def test_list_is_newest_first_and_paginated(make_client: MakeClient) -> None:
    client, _ = make_client()
    made = [start(client, [70000 + i]).json()["jobId"] for i in range(7)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/download/jobs", params=params).json()
        pages += 1
        seen += [item["jobId"] for item in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made)) and pages == 3
    bad = client.get("/v1/download/jobs", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 400 and bad.json()["error"] == "VALIDATION_ERROR"
    assert client.get("/v1/download/jobs", params={"limit": 0}).status_code == 400


def test_active_jobs_per_owner_are_capped(make_client: MakeClient) -> None:
    client, api = make_client(max_active_jobs_per_owner=2)
    first = start(client, [70000]).json()["jobId"]
    start(client, [70001])
    refused = start(client, [70002])
    assert refused.status_code == 429
    assert refused.json()["error"] == "TOO_MANY_ACTIVE_JOBS"
    assert "most allowed is 2" in refused.json()["message"]
    assert refused.headers["retry-after"]
    api.created[first]["status"] = {"phase": "Completed"}
    second = start(client, [70002])
    assert second.status_code == 202
    assert start(client, [70003]).status_code == 429
    # a job whose cancel is on its way holds no place, though the operator has not acted yet
    assert client.delete(f"/v1/download/jobs/{second.json()['jobId']}").status_code == 202
    assert start(client, [70003]).status_code == 202


def test_rate_limits_polls_and_writes_apart(make_client: MakeClient) -> None:
    client, _ = make_client(poll_rate="5/minute", initiate_rate="3/minute")
    job_id = start(client, [70000]).json()["jobId"]
    answers = [client.get(f"/v1/download/jobs/{job_id}") for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert [a.headers["ratelimit-remaining"] for a in answers] == ["4", "3", "2", "1", "0", "0"]
    assert all(a.headers["ratelimit-limit"] == "5" for a in answers)
    limited = answers[-1]
    assert int(limited.headers["retry-after"]) >= 1 and int(limited.headers["ratelimit-reset"]) >= 1
    assert limited.json()["error"] == "TOO_MANY_REQUESTS"
    assert limited.json()["requestId"] == limited.headers["x-request-id"]
    # polling has used up its window; initiating has its own
    second = start(client, [70001])
    assert second.status_code == 202 and second.headers["ratelimit-limit"] == "3"
    assert second.headers["ratelimit-remaining"] == "1"
    assert client.get("/health").status_code == 200, "probes are not rate limited"


def test_every_route_but_the_probes_is_limited(make_client: MakeClient) -> None:
    """The page, its files and the documents count with polls; probes and metrics never."""
    client, _ = make_client(poll_rate="6/minute")
    reads = [
        client.get("/"),
        client.head("/"),
        client.get("/", headers={"Accept": "text/html"}),
        client.get("/static/app.js"),
        client.get("/openapi.json"),
        client.get("/v1/download/jobs"),
    ]
    assert [a.status_code for a in reads] == [200] * 6
    assert [a.headers["ratelimit-remaining"] for a in reads] == ["5", "4", "3", "2", "1", "0"]
    for answer in reads:
        assert answer.headers["ratelimit-limit"] == "6"
        assert int(answer.headers["ratelimit-reset"]) >= 1
    assert client.get("/static/downloadjobs.js").status_code == 429
    assert client.get("/").status_code == 429
    for probe in ("/health", "/ready", "/metrics"):
        answer = client.get(probe)
        assert answer.status_code == 200, probe
        assert "ratelimit-limit" not in answer.headers, probe


def test_the_document_describes_the_limits_on_every_limited_operation(
    make_client: MakeClient,
) -> None:
    client, _ = make_client()
    document = client.get("/openapi.json").json()
    assert "RateLimit-Limit" in document["info"]["description"]
    limited = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            headers = [set(answer.get("headers", {})) for answer in responses.values()]
            if path in ("/health", "/ready", "/metrics"):
                assert "429" not in responses and not any("RateLimit-Limit" in h for h in headers)
                continue
            limited += 1
            assert "429" in responses, (method, path)
            assert "Retry-After" in responses["429"]["headers"], (method, path)
            for names in headers:
                assert {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= names, (
                    method,
                    path,
                )
    assert limited >= 9


def test_the_root_index_has_the_security_headers(make_client: MakeClient) -> None:
    client, _ = make_client()
    response = client.get("/", headers={"Accept": "application/json"})
    assert response.json()["name"] == "DownloadJobs" and response.json()["version"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-request-id"]


def test_security_headers_and_csp(make_client: MakeClient) -> None:
    client, _ = make_client()
    response = client.get("/v1/download/jobs")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    for path in ("/docs", "/docs/", "/docsx", "/docs/assets/swagger-ui-bundle.js"):
        policy = client.get(path).headers["content-security-policy"]
        assert policy == response.headers["content-security-policy"], path  # no exemption


def test_cors_from_settings(make_client: MakeClient) -> None:
    client, _ = make_client(cors_origins=["https://app.example.com"])
    response = client.options(
        "/v1/download/initiate",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Idempotency-Key, Content-Type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://app.example.com"
    foreign = client.get("/v1/download/jobs", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in foreign.headers


def test_cors_preflight_allows_what_the_client_sends_and_is_cached(
    make_client: MakeClient,
) -> None:
    client, _ = make_client(cors_origins=["http://localhost:5173"], cors_max_age=900)
    response = client.options(
        "/v1/download/jobs/some-job",
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "DELETE",
            "Access-Control-Request-Headers": "authorization, if-none-match, prefer",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert response.headers["access-control-max-age"] == "900"
    assert "DELETE" in response.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in response.headers
    refused = client.options(
        "/v1/download/initiate",
        headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "PUT"},
    )
    assert refused.status_code == 400


def test_cors_any_origin_answers_every_request_as_the_original_service_did(
    make_client: MakeClient,
) -> None:
    client, _ = make_client(cors_origins=["*"], poll_rate="2/minute")
    job_id = start(client, [70000], Origin="http://localhost:5173").json()["jobId"]
    with_origin = client.get(f"/v1/download/jobs/{job_id}", headers={"Origin": "http://x.test"})
    without = client.get(f"/v1/download/jobs/{job_id}")
    limited = client.get(f"/v1/download/jobs/{job_id}", headers={"Origin": "http://x.test"})
    assert limited.status_code == 429
    for response in (with_origin, without, limited):
        assert response.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in response.headers
        exposed = {
            h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
        }
        assert exposed >= {
            "etag",
            "retry-after",
            "location",
            "x-request-id",
            "ratelimit-limit",
            "ratelimit-remaining",
            "ratelimit-reset",
            "preference-applied",
            "x-data-stale",
        }
    assert client.get("/health").headers["access-control-allow-origin"] == "*"


def test_no_cors_headers_unless_configured(make_client: MakeClient) -> None:
    client, _ = make_client()
    response = client.get("/v1/download/jobs", headers={"Origin": "http://localhost:5173"})
    assert not [name for name in response.headers if name.startswith("access-control-")]


@pytest.mark.parametrize(
    ("raw", "origins"),
    [
        ("*", ["*"]),
        ('["https://a.example", "https://b.example"]', ["https://a.example", "https://b.example"]),
        ("https://a.example, https://b.example", ["https://a.example", "https://b.example"]),
        ("", []),
    ],
)
def test_cors_origins_setting(
    monkeypatch: pytest.MonkeyPatch, raw: str, origins: list[str]
) -> None:
    monkeypatch.setenv("DOWNLOADJOBS_API_CORS_ORIGINS", raw)
    assert ApiSettings().cors_origins == origins


def test_dev_allows_any_origin() -> None:
    assert dev.DEV_ENV["DOWNLOADJOBS_API_CORS_ORIGINS"] == "*"


def test_traceparent_is_recorded_on_the_job(make_client: MakeClient) -> None:
    client, api = make_client()
    job_id = start(client, [70000], traceparent=TRACEPARENT).json()["jobId"]
    annotations = api.created[job_id]["metadata"]["annotations"]
    assert annotations[model.ANNOTATION_TRACEPARENT] == TRACEPARENT
    ignored = start(client, [70001], traceparent="junk").json()["jobId"]
    assert model.ANNOTATION_TRACEPARENT not in api.created[ignored]["metadata"]["annotations"]


def test_log_lines_are_json_with_the_request_id(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = make_client()
    with caplog.at_level(logging.INFO, logger="downloadjobs_api.access"):
        client.get("/v1/download/jobs/nope", headers={"X-Request-ID": "trace-me-1"})
    records = [r for r in caplog.records if r.name == "downloadjobs_api.access"]
    assert records
    line = json.loads(logs.JsonFormatter().format(records[-1]))
    assert line["status"] == 404 and line["path"] == "/v1/download/jobs/nope"
    assert line["level"] == "info" and line["durationMs"] >= 0


def test_json_formatter_carries_the_context_request_id() -> None:
    token = logs.request_id.set("rid-7")
    try:
        record = logging.LogRecord("x", logging.WARNING, __file__, 1, "hello %s", ("you",), None)
        line = json.loads(logs.JsonFormatter().format(record))
    finally:
        logs.request_id.reset(token)
    assert line == {**line, "requestId": "rid-7", "message": "hello you", "level": "warning"}


def test_metrics(make_client: MakeClient) -> None:
    client, _api = make_client()
    job_id = start(client, [70000]).json()["jobId"]
    client.get(f"/v1/download/jobs/{job_id}")
    client.get("/v1/download/jobs/nope")
    text = client.get("/metrics").text
    assert (
        'downloadjobs_api_requests_total{code="200",method="GET",route="/v1/download/jobs/{job_id}"}'
        in text
    )
    assert 'route="/v1/download/jobs/{job_id}",code="404"' in text or (
        'code="404",method="GET",route="/v1/download/jobs/{job_id}"' in text
    )
    assert "downloadjobs_api_request_duration_seconds_bucket" in text
    assert 'downloadjobs_api_jobs{phase="Queued"} 1.0' in text
    assert "downloadjobs_api_cache_jobs 1.0" in text
    assert "downloadjobs_api_cache_lag_seconds 0.0" in text


def test_initiate_is_503_when_kubernetes_is_down(make_client: MakeClient) -> None:
    client, api = make_client()
    job_id = start(client, [70000]).json()["jobId"]

    def down(*args: Any) -> Any:
        raise ConnectionRefusedError("connection refused")

    api.create_namespaced_custom_object = down  # type: ignore[method-assign]
    jobs: JobService = client.app.state.jobs  # type: ignore[attr-defined]
    jobs.cache.mark_connected(False)
    refused = start(client, [70001])
    assert refused.status_code == 503 and refused.headers["retry-after"]
    assert refused.json()["error"] == "SERVICE_UNAVAILABLE"
    stale = client.get(f"/v1/download/jobs/{job_id}")
    assert stale.status_code == 200
    assert stale.headers["x-data-stale"] == "true" and "110" in stale.headers["warning"]


def test_errors_never_leak_a_stack_trace(make_client: MakeClient) -> None:
    client, api = make_client()

    def broken(*args: Any) -> Any:
        raise RuntimeError("secret internals")

    api.create_namespaced_custom_object = broken  # type: ignore[method-assign]
    client = TestClient(client.app, raise_server_exceptions=False)
    response = start(client, [70000])
    assert response.status_code == 500
    assert "secret" not in response.text and "Traceback" not in response.text
    assert set(response.json()) == {"error", "message", "requestId"}


def test_the_worker_gets_the_trace_of_the_request() -> None:
    """The operator passes the job's traceparent annotation into the worker's environment."""
    from downloadjobs_operator import manifests
    from downloadjobs_operator.settings import OperatorSettings

    body = {
        "metadata": {
            "name": "j1",
            "namespace": "default",
            "uid": "u1",
            "annotations": {model.ANNOTATION_TRACEPARENT: TRACEPARENT},
        },
        "spec": {"fileIds": [70000]},
    }
    job = manifests.build_job(body, S3Settings(), OperatorSettings())
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["TRACEPARENT"] == TRACEPARENT


def test_a_route_that_sets_its_own_policy_keeps_it(make_client: MakeClient) -> None:
    client, _ = make_client()
    app = client.app

    @app.get("/own-policy")  # type: ignore[attr-defined]
    def own() -> Any:
        from fastapi.responses import PlainTextResponse

        return PlainTextResponse("x", headers={"Content-Security-Policy": "default-src 'none'"})

    response = client.get("/own-policy")
    assert response.headers.get_list("content-security-policy") == ["default-src 'none'"]
    assert response.headers["x-request-id"]


def test_check_takes_the_same_identity_as_every_other_route(make_client: MakeClient) -> None:
    def check(client: TestClient, **headers: str) -> Any:
        return client.post("/v1/download/check", json={"file_id": 70000}, headers=headers)

    client, _ = make_client(auth_mode="token", tokens={"t-alice": "alice"})
    missing = check(client)
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert check(client, Authorization="Bearer nope").status_code == 401
    assert check(client, Authorization="Bearer t-alice").status_code == 200
    # Identity before the body: a stranger learns nothing from a 400 either.
    assert client.post("/v1/download/check", json={"file_id": "x"}).status_code == 401

    client, _ = make_client(auth_mode="header", identity_header="X-Auth-Request-User")
    assert check(client).status_code == 401
    assert check(client, **{"X-Auth-Request-User": "dora"}).status_code == 200

    client, _ = make_client()  # none mode: everyone is anonymous, as before
    assert check(client).status_code == 200


def test_rate_limits_count_the_resolved_owner_not_the_header(make_client: MakeClient) -> None:
    client, _ = make_client(
        auth_mode="token", tokens={"t1": "alice", "t2": "alice"}, initiate_rate="3/minute"
    )
    spellings = ["Bearer t1", "BEARER t1", "bearer  t1", "Bearer t2"]
    answers = [start(client, [70000 + n], Authorization=a) for n, a in enumerate(spellings)]
    assert [a.status_code for a in answers] == [202, 202, 202, 429], "one owner, one count"

    client, _ = make_client(auth_mode="token", tokens={"t1": "alice"}, initiate_rate="3/minute")
    bad = [start(client, [70000], Authorization=f"Bearer bad-{n}") for n in range(4)]
    assert [a.status_code for a in bad] == [401, 401, 401, 429], "bad tokens share the address's"
    assert start(client, [70000], Authorization="Bearer t1").status_code == 202

    client, _ = make_client(
        auth_mode="header", identity_header="X-Auth-Request-User", initiate_rate="2/minute"
    )
    users = ["dora", " dora", "dora "]
    answers = [start(client, [70000], **{"X-Auth-Request-User": u}) for u in users]
    assert [a.status_code for a in answers] == [202, 202, 429]
