"""The HTTP contract at its boundaries: what is accepted, what is refused and how."""

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient
from kubernetes.client.exceptions import ApiException
from moto import mock_aws

from downloadjobs import model
from downloadjobs.settings import S3Settings
from downloadjobs_api import health
from downloadjobs_api.app import create_app
from downloadjobs_api.jobs import JobService
from downloadjobs_api.settings import ApiSettings
from downloadjobs_api.storage import Storage


class FakeCustomObjects:
    """Just enough of CustomObjectsApi: a dict of bodies by name."""

    def __init__(self) -> None:
        self.created: dict[str, dict[str, Any]] = {}

    def create_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        body: dict[str, Any] = args[-1]
        if body["metadata"]["name"] in self.created:
            raise ApiException(status=409, reason="AlreadyExists")
        self.created[body["metadata"]["name"]] = body
        return body

    def get_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        name = args[-1]
        if name not in self.created:
            raise ApiException(status=404, reason="Not Found")
        return self.created[name]

    def list_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"items": list(self.created.values())}

    def patch_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        name, patch = args[-2], args[-1]
        body = self.created[name]
        annotations = body["metadata"].setdefault("annotations", {})
        annotations.update(patch["metadata"]["annotations"])
        return body


@pytest.fixture
def api() -> FakeCustomObjects:
    return FakeCustomObjects()


@pytest.fixture
def client(api: FakeCustomObjects, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    with mock_aws():
        settings = S3Settings()
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=settings.source_bucket)
        s3.create_bucket(Bucket=settings.bundle_bucket)
        s3.put_object(Bucket=settings.source_bucket, Key="files/70000.zip", Body=b"x" * 10)
        storage = Storage(settings)
        jobs = JobService(api, "default", storage)
        jobs.cache.synced.set()  # as the watch would, once it has listed
        jobs.cache.mark_connected(True)
        app = create_app(jobs, storage, ApiSettings())
        yield TestClient(app)


def initiate(client: TestClient, body: Any, **kwargs: Any) -> Any:
    return client.post("/v1/download/initiate", json=body, **kwargs)


def assert_envelope(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "message", "requestId"}
    assert body["requestId"] == response.headers["x-request-id"]
    assert body["message"]
    return body


@pytest.mark.parametrize(
    "file_ids",
    [
        [model.MIN_FILE_ID],
        [model.MAX_FILE_ID],
        list(range(70000, 70000 + model.MAX_FILES)),
    ],
    ids=["lowest id", "highest id", "1000 ids"],
)
def test_accepts_the_boundaries(
    client: TestClient, api: FakeCustomObjects, file_ids: list[int]
) -> None:
    response = initiate(client, {"file_ids": file_ids})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued"
    assert body["totalFileIds"] == len(file_ids)
    assert response.headers["location"] == f"/v1/download/jobs/{body['jobId']}"
    assert api.created[body["jobId"]]["spec"]["fileIds"] == file_ids


@pytest.mark.parametrize(
    "body",
    [
        {"file_ids": [model.MIN_FILE_ID - 1]},
        {"file_ids": [model.MAX_FILE_ID + 1]},
        {"file_ids": []},
        {"file_ids": list(range(70000, 70000 + model.MAX_FILES + 1))},
        {"file_ids": [70000, 70000]},
        {"file_ids": [70000.5]},
        {"file_ids": [1.5]},
        {"file_ids": [70000, 70000.0]},
        {"file_ids": ["70000"]},
        {"file_ids": [True]},
        {"file_ids": 70000},
        {"fileIds": [70000]},
        {"file_ids": [70000], "extra": 1},
        {},
        [70000],
    ],
    ids=[
        "below min",
        "above max",
        "0 items",
        "1001 items",
        "duplicates",
        "float",
        "small float",
        "duplicates once integral",
        "string",
        "bool",
        "not a list",
        "wrong key",
        "unknown key",
        "empty object",
        "array body",
    ],
)
def test_refuses_invalid_bodies_with_400(
    client: TestClient, api: FakeCustomObjects, body: Any
) -> None:
    body = assert_envelope(initiate(client, body), 400)
    assert body["error"] == "VALIDATION_ERROR"
    assert api.created == {}


def test_an_integral_number_is_an_integer(client: TestClient, api: FakeCustomObjects) -> None:
    """JSON Schema (the API's own document) and JavaScript read 70000.0 as 70000."""
    response = client.post(
        "/v1/download/initiate",
        content=b'{"file_ids": [70000.0, 7.0001e4, 70002]}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 202, response.text
    assert response.json()["totalFileIds"] == 3
    spec = api.created[response.json()["jobId"]]["spec"]
    assert spec["fileIds"] == [70000, 70001, 70002]
    assert all(type(i) is int for i in spec["fileIds"])


def test_invalid_json_is_400(client: TestClient, api: FakeCustomObjects) -> None:
    response = client.post(
        "/v1/download/initiate",
        content=b'{"file_ids": [70000',
        headers={"Content-Type": "application/json"},
    )
    assert "not valid JSON" in assert_envelope(response, 400)["message"]
    assert api.created == {}


def test_wrong_content_type_is_415(client: TestClient, api: FakeCustomObjects) -> None:
    response = client.post(
        "/v1/download/initiate",
        content=json.dumps({"file_ids": [70000]}),
        headers={"Content-Type": "text/plain"},
    )
    assert_envelope(response, 415)
    assert api.created == {}


def test_oversized_body_is_413(client: TestClient, api: FakeCustomObjects) -> None:
    padding = " " * (ApiSettings().max_body_bytes + 1)
    response = client.post(
        "/v1/download/initiate",
        content=b'{"file_ids": [70000]}' + padding.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert_envelope(response, 413)
    assert api.created == {}


def test_oversized_streamed_body_is_413(client: TestClient, api: FakeCustomObjects) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"file_ids": [70000]'
        for _ in range(100):
            yield b" " * 1024

    response = client.post(
        "/v1/download/initiate", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_envelope(response, 413)


def test_unknown_job_is_404_in_the_envelope(client: TestClient) -> None:
    for path in ("/v1/download/status/nope", "/v1/download/jobs/nope"):
        assert assert_envelope(client.get(path), 404)["error"] == "NOT_FOUND"


@pytest.mark.parametrize(
    "wait",
    ["\u00b9", "\u0663", "1" * 5000, "-1", "26", "1.0", "", "x"],
    ids=[
        "superscript",
        "arabic-indic",
        "5000 digits",
        "negative",
        "over 25",
        "float",
        "empty",
        "x",
    ],
)
def test_an_invalid_wait_is_400_never_500(client: TestClient, wait: str) -> None:
    job_id = initiate(client, {"file_ids": [70000]}).json()["jobId"]
    response = client.get(f"/v1/download/jobs/{job_id}", params={"waitSeconds": wait})
    assert assert_envelope(response, 400)["error"] == "VALIDATION_ERROR"


def test_an_unreadable_prefer_wait_is_ignored(client: TestClient) -> None:
    """Prefer is a preference: one the server cannot read is not applied (RFC 7240)."""
    job_id = initiate(client, {"file_ids": [70000]}).json()["jobId"]
    superscript_one = "wait=\u00b9".encode("latin-1")  # as a client may send it on the wire
    response = client.get(f"/v1/download/jobs/{job_id}", headers={"Prefer": superscript_one})
    assert response.status_code == 200
    assert "preference-applied" not in response.headers


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/v1/download/jobs/some-job", "DELETE, GET"),
        ("PUT", "/v1/download/jobs/some-job", "DELETE, GET"),
        ("PATCH", "/v1/download/status/some-job", "GET"),
        ("GET", "/v1/download/initiate", "POST"),
        ("POST", "/static/app.js", "GET, HEAD"),
    ],
)
def test_a_405_allows_every_method_of_the_path(
    client: TestClient, method: str, path: str, allow: str
) -> None:
    """Starlette names the methods of the first matching route only; the path takes more."""
    response = client.request(method, path)
    assert assert_envelope(response, 405)["error"] == "METHOD_NOT_ALLOWED"
    assert response.headers["allow"] == allow


def test_the_document_lists_every_answer_of_initiate(client: TestClient) -> None:
    responses = client.get("/openapi.json").json()["paths"]["/v1/download/initiate"]["post"]
    codes = set(responses["responses"])
    assert {"200", "202", "400", "401", "413", "415", "422", "429", "500", "503"} <= codes
    error = responses["responses"]["422"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/ErrorResponse"}


def test_request_id_is_echoed_or_made(client: TestClient) -> None:
    echoed = client.get("/v1/download/status/x", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    made = client.get("/v1/download/status/x")
    assert len(made.headers["x-request-id"]) == 36
    hostile = client.get("/v1/download/status/x", headers={"X-Request-ID": "a\tb<script>"})
    assert hostile.headers["x-request-id"] != "a\tb<script>"


def test_status_of_a_new_job(client: TestClient) -> None:
    job_id = initiate(client, {"file_ids": [70000, 70001]}).json()["jobId"]
    for path in (f"/v1/download/status/{job_id}", f"/v1/download/jobs/{job_id}"):
        body = client.get(path).json()
        assert body["jobId"] == job_id
        assert body["status"] == "queued"
        assert body["progress"] == 0
        assert body["result"] is None


def test_completed_job_gets_a_fresh_presigned_url(
    client: TestClient, api: FakeCustomObjects
) -> None:
    job_id = initiate(client, {"file_ids": [70000]}).json()["jobId"]
    api.created[job_id]["status"] = {
        "phase": "Completed",
        "result": {
            "bucket": "b",
            "key": f"bundles/default/{job_id}.zip",
            "size": 5,
            "sha256": "0" * 64,
            "missingFileIds": [],
        },
    }
    first = client.get(f"/v1/download/status/{job_id}").json()
    assert first["status"] == "completed"
    assert first["progress"] == 100
    url = first["result"]["downloadUrl"]
    assert (
        f"/downloads-bundles/bundles/default/{job_id}.zip" in url
        or f"downloads-bundles.s3.amazonaws.com/bundles/default/{job_id}.zip" in url
    )
    assert "X-Amz-Expires=900" in url and "X-Amz-Signature=" in url
    assert "downloadUrl" not in json.dumps(api.created[job_id])


@pytest.mark.parametrize(
    ("bucket", "key"),
    [
        ("downloads-bundles", "bundles/default/someone-elses-job.zip"),
        ("downloads-source", "files/70000.zip"),
        ("attacker-bucket", "bundles/default/JOB.zip"),
    ],
    ids=["another job's bundle", "a source file", "another bucket"],
)
def test_a_key_in_status_is_never_presigned(
    client: TestClient, api: FakeCustomObjects, bucket: str, key: str
) -> None:
    """
    A worker may write any status: the URL is for the job's own bundle, at the key
    the worker is told to write (bundle bucket, prefix, namespace, job id), never for
    whatever bucket or key the status names.
    """
    job_id = initiate(client, {"file_ids": [70000]}).json()["jobId"]
    api.created[job_id]["status"] = {
        "phase": "Completed",
        "result": {
            "bucket": bucket,
            "key": key.replace("JOB", job_id),
            "size": 5,
            "sha256": "0" * 64,
            "missingFileIds": [],
        },
    }
    own = f"downloads-bundles/bundles/default/{job_id}.zip"
    polled = client.get(f"/v1/download/jobs/{job_id}").json()["result"]["downloadUrl"]
    redirect = client.get(f"/v1/download/jobs/{job_id}/file", follow_redirects=False)
    for url in (polled, redirect.headers["location"]):
        path = url.split("?")[0].replace(".s3.amazonaws.com", "")
        assert path.endswith(own), url
        assert "someone-elses-job" not in url and "files/70000" not in url
        assert "attacker-bucket" not in url


def test_a_shared_bundle_is_presigned_from_the_operators_annotation(
    client: TestClient, api: FakeCustomObjects
) -> None:
    """A job that reused another's bundle gets a URL for that bundle, named for itself."""
    job_id = initiate(client, {"file_ids": [70000]}).json()["jobId"]
    body = api.created[job_id]
    body["metadata"].setdefault("annotations", {})[model.ANNOTATION_BUNDLE_OF] = "the-builder"
    body["status"] = {
        "phase": "Completed",
        "result": {"bucket": "x", "key": "y", "size": 5, "missingFileIds": [], "reused": True},
    }
    polled = client.get(f"/v1/download/jobs/{job_id}").json()["result"]["downloadUrl"]
    redirect = client.get(f"/v1/download/jobs/{job_id}/file", follow_redirects=False)
    for url in (polled, redirect.headers["location"]):
        assert (
            url.split("?")[0]
            .replace(".s3.amazonaws.com", "")
            .endswith("downloads-bundles/bundles/default/the-builder.zip")
        ), url
        assert f"download-{job_id}.zip" in url  # the file a browser saves is named for the job


def test_a_presigned_url_is_reused_while_most_of_its_life_is_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Signing is the dearest part of a poll; a URL is reused for a quarter of its life."""
    from downloadjobs_api import storage as storage_module

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    clock = [1000.0]
    monkeypatch.setattr(storage_module.time, "monotonic", lambda: clock[0])
    storage = Storage(S3Settings(presign_expiry_seconds=400))
    signed: list[str] = []
    sign = storage._sign

    def counting_sign(bucket: str, key: str, job_id: str) -> Any:
        signed.append(job_id)
        return sign(bucket, key, job_id)

    monkeypatch.setattr(storage, "_sign", counting_sign)
    bundle = "default"

    first = storage.presign(bundle, "j")
    assert "X-Amz-Expires=400" in first[0]
    clock[0] += 99  # under a quarter of 400 s: the same URL and expiry, not signed again
    assert storage.presign(bundle, "j") == first
    assert signed == ["j"]
    storage.presign(bundle, "other")  # another job (its file name differs): its own URL
    assert signed == ["j", "other"]
    clock[0] += 2  # past a quarter of its life: signed anew
    renewed = storage.presign(bundle, "j")
    assert signed == ["j", "other", "j"]
    assert storage.presign(bundle, "j") == renewed  # and that one is reused in turn
    storage.presign(bundle, "j", reuse=False)  # what /file asks for: always signed anew
    assert signed == ["j", "other", "j", "j"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"file_id": 70000}, 200),
        ({"file_id": 70001}, 200),
        ({"file_id": 9999}, 400),
        ({"file_id": "70000"}, 400),
        ({"file_id": 70000.0}, 200),  # an integral number is an integer (JSON Schema, JS)
        ({"file_id": 70000.5}, 400),
        ({"file_id": True}, 400),
        ({}, 400),
    ],
)
def test_check(client: TestClient, body: Any, status: int) -> None:
    response = client.post("/v1/download/check", json=body)
    assert response.status_code == status, response.text
    if status == 200:
        answer = response.json()
        file_id = int(body["file_id"])
        assert answer["file_id"] == file_id
        assert answer["available"] is (file_id == 70000)
        assert answer["s3Key"] == f"files/{file_id}.zip"


def test_health(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "healthy",
        "checks": {"storage": "ok", "kubernetes": "ok", "cache": "ok"},
    }


def test_health_is_503_when_the_watch_is_down(client: TestClient) -> None:
    jobs: JobService = client.app.state.jobs  # type: ignore[attr-defined]
    jobs.cache.mark_connected(False)
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["checks"] == {"storage": "ok", "kubernetes": "error", "cache": "ok"}
    assert client.get("/ready").status_code == 200, "a synced cache still answers polls"


@pytest.mark.parametrize("phase", ["Queued", "Processing", None])
def test_cancel_asks_the_operator(
    client: TestClient, api: FakeCustomObjects, phase: str | None
) -> None:
    job_id = initiate(client, {"file_ids": [70000]}).json()["jobId"]
    if phase:
        api.created[job_id]["status"] = {"phase": phase}
    response = client.delete(f"/v1/download/jobs/{job_id}")
    assert response.status_code == 202, response.text
    assert model.ANNOTATION_CANCEL in api.created[job_id]["metadata"]["annotations"]


@pytest.mark.parametrize("phase", ["Completed", "Failed", "Cancelled"])
def test_cancelling_a_finished_job_is_409(
    client: TestClient, api: FakeCustomObjects, phase: str
) -> None:
    job_id = initiate(client, {"file_ids": [70000]}).json()["jobId"]
    api.created[job_id]["status"] = {"phase": phase}
    body = assert_envelope(client.delete(f"/v1/download/jobs/{job_id}"), 409)
    assert body["error"] == "CONFLICT" and phase.lower() in body["message"]
    assert model.ANNOTATION_CANCEL not in api.created[job_id]["metadata"].get("annotations", {})


def test_only_failed_jobs_can_be_retried(client: TestClient, api: FakeCustomObjects) -> None:
    job_id = initiate(client, {"file_ids": [70000]}).json()["jobId"]
    assert_envelope(client.post(f"/v1/download/jobs/{job_id}/retry"), 409)
    api.created[job_id]["status"] = {
        "phase": "Failed",
        "error": {"reason": "AllFilesMissing", "message": "none"},
    }
    response = client.post(f"/v1/download/jobs/{job_id}/retry")
    assert response.status_code == 202, response.text
    assert model.ANNOTATION_RETRY in api.created[job_id]["metadata"]["annotations"]
    assert_envelope(client.post("/v1/download/jobs/nope/retry"), 404)


def test_initiate_records_the_submission_time(client: TestClient, api: FakeCustomObjects) -> None:
    job_id = initiate(client, {"file_ids": [70000]}).json()["jobId"]
    stamp = api.created[job_id]["metadata"]["annotations"][model.ANNOTATION_SUBMITTED_AT]
    assert "." in stamp, "microseconds: FIFO order within a second"


def complete(api: FakeCustomObjects, job_id: str) -> None:
    api.created[job_id]["status"] = {
        "phase": "Completed",
        "result": {
            "bucket": "b",
            "key": f"bundles/default/{job_id}.zip",
            "size": 5,
            "sha256": "0" * 64,
            "missingFileIds": [],
        },
    }


def test_no_answer_with_a_presigned_url_may_be_stored(
    client: TestClient, api: FakeCustomObjects
) -> None:
    job_id = initiate(client, {"file_ids": [70000]}).json()["jobId"]
    queued = client.get(f"/v1/download/status/{job_id}")
    assert queued.headers["cache-control"] == "private, no-cache"  # no URL: revalidate by ETag
    complete(api, job_id)
    for path in (f"/v1/download/status/{job_id}", f"/v1/download/jobs/{job_id}"):
        done = client.get(path)
        assert done.json()["result"]["downloadUrl"]
        assert done.headers["cache-control"] == "private, no-store", path
        again = client.get(path, headers={"If-None-Match": done.headers["etag"]})
        assert again.status_code == 304
        assert again.headers["cache-control"] == "private, no-store", path
    listed = client.get("/v1/download/jobs")
    assert listed.json()["items"][0]["result"]["downloadUrl"]
    assert listed.headers["cache-control"] == "private, no-store"
    redirect = client.get(f"/v1/download/jobs/{job_id}/file", follow_redirects=False)
    assert redirect.status_code == 302
    assert redirect.headers["cache-control"] == "private, no-store"


def test_health_probes_storage_at_most_every_few_seconds(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage: Storage = client.app.state.storage  # type: ignore[attr-defined]
    calls: list[int] = []
    real = storage.ping
    monkeypatch.setattr(storage, "ping", lambda: calls.append(1) or real())
    # The app bound the probe at start-up: rebuild it over the counting ping.
    client.app.state.storage_probe = health.storage_probe(storage)  # type: ignore[attr-defined]
    for _ in range(20):
        assert client.get("/health").status_code == 200
    assert len(calls) == 1


def test_a_cached_probe_asks_again_once_its_answer_is_old() -> None:
    now = [100.0]
    calls: list[int] = []

    def ping() -> None:
        calls.append(1)
        if len(calls) > 1:
            raise OSError("down")

    probe = health.CachedProbe("storage", ping, seconds=5, clock=lambda: now[0])
    assert probe() == "ok" and probe() == "ok"
    now[0] += 4.9
    assert probe() == "ok" and len(calls) == 1
    now[0] += 0.2
    assert probe() == "error" and len(calls) == 2
