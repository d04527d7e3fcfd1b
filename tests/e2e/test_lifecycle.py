"""
The job lifecycle on the embedded cluster: admission under a cap, cancellation
in every state, kubectl-style deletion, dead letters and their replay.
"""

import concurrent.futures
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import kubernetes
import pytest

from downloadjobs import model, s3
from downloadjobs_embedded import s3server
from downloadjobs_embedded.stack import Stack, free_port
from tests.e2e.client import TIMEOUT, initiate, poll, scrape, status
from tests.e2e.support import running_stack, wait_for, wait_nothing_left

CAP = 5
METRICS_PORT = free_port()


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    operator = {
        "DOWNLOADJOBS_OPERATOR_MAX_RUNNING": str(CAP),
        "DOWNLOADJOBS_OPERATOR_RECONCILE_INTERVAL": "5",
        "DOWNLOADJOBS_OPERATOR_BACKOFF_LIMIT": "1",
        "DOWNLOADJOBS_OPERATOR_METRICS_PORT": str(METRICS_PORT),
    }
    with running_stack(tmp_path_factory, "capped", delay_ms=(300, 600), operator=operator) as stack:
        yield stack


def running(jobs: list[dict[str, Any]]) -> list[str]:
    finished = {"Complete", "Failed"}
    return [
        j["metadata"]["name"]
        for j in jobs
        if not j["spec"].get("suspend")
        and not {c["type"] for c in (j.get("status") or {}).get("conditions", [])} & finished
    ]


def test_admission_is_capped_fifo_with_falling_positions(capped: Stack) -> None:
    count = 50
    samples: list[list[str]] = []
    positions: dict[str, list[int]] = {}
    admitted_at: dict[str, str] = {}  # Job name -> the time of the pass that admitted it
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            jobs = capped.jobs()
            samples.append(running(jobs))
            for job in jobs:  # admitted: unsuspended, running or (quicker than a sample) done
                if not job["spec"].get("suspend"):
                    stamp = job["metadata"]["annotations"][model.ANNOTATION_ADMITTED_AT]
                    admitted_at.setdefault(job["metadata"]["name"], stamp)
            for body in capped.downloadjobs():
                pos = (body.get("status") or {}).get("queuePosition")
                seen = positions.setdefault(body["metadata"]["name"], [])
                if pos is not None and (not seen or seen[-1] != pos):
                    seen.append(pos)
            time.sleep(0.25)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        job_ids = [initiate(capped.api_url, [70000 + i]) for i in range(count)]
        finals = [poll(capped.api_url, j, timeout=300, interval=1.0)[0] for j in job_ids]
    finally:
        stop.set()
        sampler.join()

    assert [f["status"] for f in finals] == ["completed"] * count
    assert max(len(s) for s in samples) <= CAP, "never more than the cap running"
    assert max(len(s) for s in samples) == CAP, "the cap is used"
    # One pass admits several jobs at once, whatever order its writes land in: the
    # order is that of the passes, which every admitted Job carries.
    order = [admitted_at[f"dj-{j}"] for j in job_ids]
    assert order == sorted(order), "first in, first out (no job starts before an older one)"
    assert len(set(order)) > count // CAP, "admitted over many passes, as slots came free"
    waited = [p for p in positions.values() if p]
    assert len(waited) >= count - CAP - 2
    for seen in waited:
        assert seen == sorted(seen, reverse=True) and len(set(seen)) == len(seen), seen


def test_cancel_while_processing_and_while_queued(capped: Stack) -> None:
    many = list(range(70000, 70040))  # 40 files, about 20 s of work each
    busy = [initiate(capped.api_url, many) for _ in range(CAP + 1)]
    processing, queued = busy[0], busy[-1]
    wait_for(
        lambda: status(capped.api_url, processing)["status"] == "processing", what="processing"
    )
    wait_for(lambda: status(capped.api_url, processing)["progress"] > 0, what="progress")
    assert status(capped.api_url, queued)["status"] == "queued"
    wait_for(lambda: status(capped.api_url, queued)["queuePosition"] == 1, what="queue position 1")

    for job_id in (queued, processing):  # the queued one first: else it takes the freed slot
        response = httpx.delete(f"{capped.api_url}/v1/download/jobs/{job_id}", timeout=TIMEOUT)
        assert response.status_code == 202, response.text
    for job_id in (processing, queued):
        wait_for(
            lambda j=job_id: status(capped.api_url, j)["status"] == "cancelled", what="cancelled"
        )
        wait_nothing_left(capped, job_id)
    assert status(capped.api_url, queued)["startedAt"] is None, "a cancelled queued job never ran"
    for job_id in busy[1:-1]:
        httpx.delete(f"{capped.api_url}/v1/download/jobs/{job_id}", timeout=TIMEOUT)


def test_cancel_after_completion_is_409(capped: Stack) -> None:
    job_id = initiate(capped.api_url, [70001])
    assert poll(capped.api_url, job_id)[0]["status"] == "completed"
    response = httpx.delete(f"{capped.api_url}/v1/download/jobs/{job_id}", timeout=TIMEOUT)
    assert response.status_code == 409
    assert response.json()["error"] == "CONFLICT"
    assert "completed already" in response.json()["message"]
    assert status(capped.api_url, job_id)["status"] == "completed"
    assert httpx.delete(f"{capped.api_url}/v1/download/jobs/nope").status_code == 404


def test_kubectl_style_delete_stops_everything(capped: Stack) -> None:
    job_id = initiate(capped.api_url, list(range(70000, 70040)))
    wait_for(lambda: status(capped.api_url, job_id)["progress"] > 0, what="progress")
    kubernetes.client.CustomObjectsApi(capped.client).delete_namespaced_custom_object(
        model.GROUP, model.VERSION, capped.namespace, model.PLURAL, job_id
    )
    wait_for(
        lambda: job_id not in [d["metadata"]["name"] for d in capped.downloadjobs()],
        what="the resource to go (its finalizer released)",
    )
    wait_nothing_left(capped, job_id)
    assert httpx.get(f"{capped.api_url}/v1/download/status/{job_id}").status_code == 404


def test_dead_letter_is_labelled_and_replayed(capped: Stack) -> None:
    missing = 99_000_001
    job_id = initiate(capped.api_url, [missing])
    final = poll(capped.api_url, job_id)[0]
    assert final["status"] == "failed" and final["error"]["reason"] == "AllFilesMissing"
    dead = kubernetes.client.CustomObjectsApi(capped.client).list_namespaced_custom_object(
        model.GROUP,
        model.VERSION,
        capped.namespace,
        model.PLURAL,
        label_selector=f"{model.LABEL_DEAD_LETTER}=true",
    )
    assert job_id in [d["metadata"]["name"] for d in dead["items"]]

    early = httpx.post(
        f"{capped.api_url}/v1/download/jobs/{initiate(capped.api_url, [70002])}/retry"
    )
    assert early.status_code in (409, 202)  # queued or processing: 409; tolerate a race
    # The file turns up; the replay now succeeds with a new Job.
    client = s3.client(capped.s3_settings, credentials=s3server.BOTO_CREDENTIALS)
    client.put_object(
        Bucket=capped.s3_settings.source_bucket,
        Key=capped.s3_settings.source_key(missing),
        Body=b"late",
    )
    response = httpx.post(f"{capped.api_url}/v1/download/jobs/{job_id}/retry", timeout=TIMEOUT)
    assert response.status_code == 202, response.text
    final = wait_for(
        lambda: (s := status(capped.api_url, job_id))["status"] == "completed" and s,
        timeout=90,
        what="the replay to complete",
    )
    assert final["error"] is None and final["result"]["missingFileIds"] == []
    (body,) = [d for d in capped.downloadjobs() if d["metadata"]["name"] == job_id]
    assert body["status"]["replays"] == 1
    assert body["status"]["jobName"] == f"dj-{job_id}-r1"
    assert model.LABEL_DEAD_LETTER not in (body["metadata"].get("labels") or {})
    assert model.ANNOTATION_RETRY not in (body["metadata"].get("annotations") or {})
    events = capped.events()
    reasons = [e["reason"] for e in events if e["involvedObject"]["name"] == job_id]
    assert {"Failed", "Replayed", "Completed"} <= set(reasons), reasons


def burst_of_create_then_delete(stack: Stack, count: int) -> list[str]:
    def create_then_delete(i: int) -> str:
        job_id = initiate(stack.api_url, [70000 + i % 100])
        url = f"{stack.api_url}/v1/download/jobs/{job_id}"
        response = httpx.delete(url, timeout=TIMEOUT)
        assert response.status_code == 202, response.text
        return job_id

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return list(pool.map(create_then_delete, range(count)))


def test_a_burst_of_create_then_delete_ends_all_cancelled(capped: Stack) -> None:
    """
    300 DELETEs, each right behind its create, while the cap is full: the operator
    often first sees a job with the cancel annotation set already. Every one ends
    cancelled, none ever started a pod (the Job controller created none), and a job
    created afterwards still runs.
    """
    busy = [initiate(capped.api_url, list(range(70000, 70080))) for _ in range(CAP)]
    wait_for(
        lambda: all(status(capped.api_url, j)["progress"] > 0 for j in busy),
        what="the cap full",
    )
    # Frozen, they hold their slots however long the burst takes on a loaded machine.
    frozen = [pid for pod, pid in capped.pod_processes() if any(j in pod for j in busy)]
    assert len(frozen) == CAP
    for pid in frozen:
        os.killpg(pid, signal.SIGSTOP)
    try:
        ids = burst_of_create_then_delete(capped, 300)
        wait_for(
            lambda: all(status(capped.api_url, j)["status"] == "cancelled" for j in ids),
            timeout=300,
            what="every job cancelled",
        )
    finally:
        for pid in frozen:
            os.killpg(pid, signal.SIGCONT)
    started = {
        e["involvedObject"]["name"]
        for e in capped.events()
        if e.get("reason") == "SuccessfulCreate" and e["involvedObject"].get("kind") == "Job"
    }
    assert not started & {f"dj-{job_id}" for job_id in ids}, "a cancelled job started a pod"
    for job_id in busy:
        httpx.delete(f"{capped.api_url}/v1/download/jobs/{job_id}", timeout=TIMEOUT)
    assert poll(capped.api_url, initiate(capped.api_url, [70003]))[0]["status"] == "completed"


def test_operator_metrics(capped: Stack) -> None:
    """Runs last in this module: the jobs above have moved every gauge and counter."""
    values = scrape(METRICS_PORT)
    assert values['downloadjobs_jobs{namespace="default",phase="Completed"}'] >= 50
    assert 'downloadjobs_queue_depth{namespace="default"}' in values
    assert 'downloadjobs_oldest_queued_seconds{namespace="default"}' in values
    assert values['downloadjobs_job_duration_seconds_count{phase="Completed"}'] >= 50
    assert values["downloadjobs_cancelled_total"] >= 2
    assert "downloadjobs_stalls_total" in values
    assert "downloadjobs_pod_retries_total" in values
