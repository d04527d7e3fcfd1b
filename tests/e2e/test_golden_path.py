"""
One download end to end: the real HTTP API, the real kopf operator process,
kube-apiserver and the Job controller, the node agent running the real worker,
and moto's S3 over HTTP.
"""

import concurrent.futures
import io
import json
import zipfile
from typing import Any

import httpx
import kubernetes
import pytest

from downloadjobs import model
from downloadjobs_embedded import s3server
from downloadjobs_embedded.stack import Stack
from tests.e2e.client import initiate, poll
from tests.e2e.support import wait_for

MISSING = [99991, 99992]


def download(url: str) -> zipfile.ZipFile:
    response = httpx.get(url)
    assert response.status_code == 200
    return zipfile.ZipFile(io.BytesIO(response.content))


def test_all_files_present(stack: Stack) -> None:
    ids = [70000, 70007, 70014]
    job_id = initiate(stack.api_url, ids)
    final, progress = poll(stack.api_url, job_id)

    assert final["status"] == "completed", final
    assert final["progress"] == 100
    assert progress == sorted(progress), "progress never goes back"
    assert len(set(progress)) >= 2
    result = final["result"]
    assert result["missingFileIds"] == []
    assert result["downloadUrl"].startswith(stack.s3_url)
    with download(result["downloadUrl"]) as bundle:
        assert bundle.testzip() is None
        assert bundle.namelist() == [f"{i}.zip" for i in ids]
        for i in ids:
            assert bundle.read(f"{i}.zip") == s3server.sample_content(i)
    assert result["size"] == len(httpx.get(result["downloadUrl"]).content)

    (resource,) = [d for d in stack.downloadjobs() if d["metadata"]["name"] == job_id]
    assert resource["status"]["phase"] == "Completed"
    assert resource["status"]["jobName"] == f"dj-{job_id}"
    assert resource["status"]["startedAt"] and resource["status"]["completedAt"]
    assert "downloadUrl" not in str(resource), "a presigned URL is never stored"
    events = stack.events()
    reasons = [e["reason"] for e in events if e["involvedObject"]["name"] == job_id]
    for transition in ("JobCreated", "Processing", "Completed"):
        assert transition in reasons, reasons
    jobs = [j for j in stack.jobs() if j["metadata"]["name"] == f"dj-{job_id}"]
    assert len(jobs) == 1
    assert jobs[0]["metadata"]["ownerReferences"][0]["uid"] == resource["metadata"]["uid"]


def test_some_files_missing(stack: Stack) -> None:
    ids = [70001, MISSING[0], 70002]
    final, _ = poll(stack.api_url, initiate(stack.api_url, ids))
    assert final["status"] == "completed", final
    assert final["result"]["missingFileIds"] == [MISSING[0]]
    with download(final["result"]["downloadUrl"]) as bundle:
        assert bundle.namelist() == ["70001.zip", "70002.zip"]
        assert bundle.read("70002.zip") == s3server.sample_content(70002)


def test_all_files_missing_fails_with_a_reason(stack: Stack) -> None:
    job_id = initiate(stack.api_url, MISSING)
    final, _ = poll(stack.api_url, job_id)
    assert final["status"] == "failed", final
    assert final["error"]["reason"] == "AllFilesMissing"
    assert "none of the 2 requested files" in final["error"]["message"]
    assert final["result"] is None

    # A permanent failure is not retried: the podFailurePolicy fails the Job at once. The
    # DownloadJob fails on the Job controller's FailureTarget condition; the controller
    # counts the failed pod and sets Failed after it, which the operator need not wait for.
    def failed() -> dict[str, Any] | None:
        (job,) = [j for j in stack.jobs() if j["metadata"]["name"] == f"dj-{job_id}"]
        conditions = (job.get("status") or {}).get("conditions") or []
        return (
            job
            if any(c["type"] == "Failed" and c["status"] == "True" for c in conditions)
            else None
        )

    job = wait_for(failed, what="the Job's Failed condition")
    assert job["status"]["failed"] == 1
    reasons = {c["reason"] for c in job["status"]["conditions"] if c["status"] == "True"}
    assert reasons == {"PodFailurePolicy"}


def test_twenty_jobs_at_once(stack: Stack) -> None:
    batches = [[70020 + i, 70050 + i] for i in range(20)]
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        job_ids = list(pool.map(lambda ids: initiate(stack.api_url, ids), batches))
        finals = list(
            pool.map(lambda j: poll(stack.api_url, j, timeout=240, interval=1.0)[0], job_ids)
        )
    assert [f["status"] for f in finals] == ["completed"] * 20
    for ids, final in zip(batches, finals, strict=True):
        with download(final["result"]["downloadUrl"]) as bundle:
            assert bundle.namelist() == [f"{i}.zip" for i in ids]
    names = [j["metadata"]["name"] for j in stack.jobs()]
    assert len(names) == len(set(names)), "one Job per DownloadJob"
    for job_id in job_ids:
        assert names.count(f"dj-{job_id}") == 1


def test_invalid_resource_is_refused_by_the_api_server(stack: Stack) -> None:
    """kube-apiserver enforces the CRD's schema: 422 with its own message, nothing stored."""
    api = kubernetes.client.CustomObjectsApi(stack.client)
    body = {
        "apiVersion": model.API_VERSION,
        "kind": model.KIND,
        "metadata": {"name": "bad"},
        "spec": {"fileIds": [5]},
    }
    with pytest.raises(kubernetes.client.ApiException) as refused:
        api.create_namespaced_custom_object(
            model.GROUP, model.VERSION, stack.namespace, model.PLURAL, body
        )
    assert refused.value.status == 422
    answer = json.loads(refused.value.body)
    assert answer["reason"] == "Invalid"
    assert "spec.fileIds[0]" in answer["message"] and "10000" in answer["message"], answer
    assert "bad" not in [d["metadata"]["name"] for d in stack.downloadjobs()]


def test_a_status_field_the_crd_does_not_declare_is_pruned(stack: Stack) -> None:
    """What a real API server does silently to an undeclared field: drops it."""
    job_id = initiate(stack.api_url, [70000])
    api = kubernetes.client.CustomObjectsApi(stack.client)
    patch = {"status": {"undeclaredField": "dropped"}}
    api.patch_namespaced_custom_object_status(
        model.GROUP, model.VERSION, stack.namespace, model.PLURAL, job_id, patch
    )
    stored = api.get_namespaced_custom_object(
        model.GROUP, model.VERSION, stack.namespace, model.PLURAL, job_id
    )
    assert "undeclaredField" not in stored["status"]
