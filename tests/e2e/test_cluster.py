"""
What only a real control plane can show: Pod Security admission, the Job
controller's ``podReplacementPolicy`` and ``DisruptionTarget`` handling, the
Eviction API, watches that survive a restart of kube-apiserver, and jobs that
survive a restart of the whole stack (etcd on disk).
"""

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import pytest

from downloadjobs import model
from downloadjobs.settings import S3Settings
from downloadjobs_embedded.stack import Stack, free_port
from downloadjobs_operator.manifests import build_job
from downloadjobs_operator.settings import OperatorSettings
from tests.e2e.client import TIMEOUT, initiate, poll
from tests.e2e.support import running_stack, wait_for


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Workers slow enough (about 1 s a file) to be caught running."""
    with running_stack(tmp_path_factory, "cluster", delay_ms=(800, 1000)) as stack:
        yield stack


def worker_pods(stack: Stack, job_id: str) -> list[dict[str, Any]]:
    return [
        p
        for p in stack.pods()
        if (p["metadata"].get("labels") or {}).get(model.LABEL_JOB_NAME) == job_id
    ]


def running_pod(stack: Stack, job_id: str) -> dict[str, Any]:
    def running() -> dict[str, Any] | None:
        for pod in worker_pods(stack, job_id):
            if pod["status"].get("phase") == "Running":
                return pod
        return None

    found: dict[str, Any] = wait_for(running, timeout=60, what="a running worker pod")
    return found


def job_of(stack: Stack, job_id: str) -> dict[str, Any]:
    (job,) = [j for j in stack.jobs() if j["metadata"]["name"] == f"dj-{job_id}"]
    return job


def test_pod_security_admits_the_worker_and_refuses_a_careless_pod(slow: Stack) -> None:
    core = kubernetes.client.CoreV1Api(slow.client)
    namespace = "restricted"
    labels = {"pod-security.kubernetes.io/enforce": "restricted"}
    core.create_namespace({"metadata": {"name": namespace, "labels": labels}})
    body = {
        "metadata": {"name": "dl", "namespace": namespace, "uid": "0"},
        "spec": {"fileIds": [70000]},
    }
    template = build_job(body, S3Settings(), OperatorSettings())["spec"]["template"]
    worker = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**template["metadata"], "name": "worker"},
        "spec": template["spec"],
    }
    worker["spec"]["serviceAccountName"] = "default"
    created = core.create_namespaced_pod(namespace, worker, dry_run="All")
    assert created.metadata.name == "worker"
    # No securityContext at all: what `restricted` refuses (privilege escalation, root,
    # capabilities, seccomp), and what baseline would still admit.
    careless = {
        "metadata": {"name": "careless"},
        "spec": {"containers": [{"name": "c", "image": "x", "command": ["true"]}]},
    }
    with pytest.raises(kubernetes.client.ApiException) as refused:
        core.create_namespaced_pod(namespace, careless, dry_run="All")
    assert refused.value.status == 403
    message = json.loads(refused.value.body)["message"]
    assert 'violates PodSecurity "restricted:latest"' in message, message


def test_a_replacement_pod_starts_only_after_the_old_one_is_gone(slow: Stack) -> None:
    """``podReplacementPolicy: Failed``: never two worker pods of one job at once."""
    job_id = initiate(slow.api_url, list(range(70000, 70012)))
    old = running_pod(slow, job_id)
    # Running is written as the shim starts; its process id follows a moment later.
    (pid,) = wait_for(
        lambda: [p for name, p in slow.pod_processes() if name == old["metadata"]["name"]],
        what="the worker's process",
    )
    os.killpg(pid, signal.SIGSTOP)  # deaf to SIGTERM: it lives out its grace period
    core = kubernetes.client.CoreV1Api(slow.client)
    core.delete_namespaced_pod(old["metadata"]["name"], slow.namespace, grace_period_seconds=4)
    deleted_at = time.monotonic()
    overlaps = []
    replaced_after = None
    while time.monotonic() - deleted_at < 60:
        pods = worker_pods(slow, job_id)
        names = {p["metadata"]["name"] for p in pods}
        old_alive = any(
            p["metadata"]["name"] == old["metadata"]["name"]
            and p["status"].get("phase") not in ("Failed", "Succeeded")
            for p in pods
        )
        if old_alive and len(names) > 1:
            overlaps.append(sorted(names))
        if not old_alive and len(names - {old["metadata"]["name"]}) >= 1:
            replaced_after = time.monotonic() - deleted_at
            break
        time.sleep(0.1)
    assert overlaps == [], "a replacement started while the old pod was terminating"
    assert replaced_after is not None and replaced_after >= 3.5, replaced_after
    final = poll(slow.api_url, job_id, timeout=120)[0]
    assert final["status"] == "completed" and final["attempts"] == 2, final


def test_an_evicted_pod_does_not_count_against_the_backoff_limit(slow: Stack) -> None:
    job_id = initiate(slow.api_url, list(range(70020, 70030)))
    pod = running_pod(slow, job_id)
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": pod["metadata"]["name"], "namespace": slow.namespace},
    }
    core = kubernetes.client.CoreV1Api(slow.client)
    core.create_namespaced_pod_eviction(pod["metadata"]["name"], slow.namespace, eviction)

    def evicted() -> dict[str, Any] | None:
        for candidate in worker_pods(slow, job_id):
            if candidate["metadata"]["uid"] == pod["metadata"]["uid"]:
                conditions = {c["type"]: c for c in candidate["status"].get("conditions") or []}
                if "DisruptionTarget" in conditions:
                    return conditions["DisruptionTarget"]
        return None

    condition = wait_for(evicted, timeout=30, what="DisruptionTarget on the evicted pod")
    assert condition["status"] == "True" and condition["reason"] == "EvictionByEvictionAPI"
    final = poll(slow.api_url, job_id, timeout=120)[0]
    assert final["status"] == "completed", final
    status = job_of(slow, job_id)["status"]
    assert status.get("failed", 0) == 0, "an eviction is ignored by the podFailurePolicy"
    assert status["succeeded"] == 1


def test_polls_and_the_operator_ride_out_a_restart_of_the_api_server(slow: Stack) -> None:
    job_id = initiate(slow.api_url, list(range(70040, 70050)))
    wrong: list[str] = []
    progress: list[int] = []
    stop = threading.Event()

    def poller() -> None:
        while not stop.wait(0.2):
            response = httpx.get(f"{slow.api_url}/v1/download/status/{job_id}", timeout=TIMEOUT)
            if response.status_code != 200:
                wrong.append(f"{response.status_code} {response.text[:200]}")
                continue
            value = response.json()["progress"]
            if progress and value < progress[-1]:
                wrong.append(f"progress went back from {progress[-1]} to {value}")
            progress.append(value)

    thread = threading.Thread(target=poller)
    thread.start()
    try:
        wait_for(lambda: progress and progress[-1] > 0, timeout=60, what="progress")
        slow.stop("apiserver")
        time.sleep(3)
        slow.start("apiserver")
        slow.wait_apiserver()
        after = initiate(slow.api_url, [70060, 70061])  # written after the restart
        final = poll(slow.api_url, job_id, timeout=180)[0]
        assert final["status"] == "completed", final
        assert poll(slow.api_url, after, timeout=120)[0]["status"] == "completed"
    finally:
        stop.set()
        thread.join()
    assert wrong == []
    assert progress[-1] == 100


def test_jobs_survive_a_restart_of_the_whole_stack(tmp_path: Path) -> None:
    etcd = {"etcd_port": free_port(), "etcd_peer_port": free_port()}
    with Stack(tmp_path, **etcd) as stack:
        job_id = initiate(stack.api_url, [70000, 70001])
        assert poll(stack.api_url, job_id)[0]["status"] == "completed"
    with Stack(tmp_path, **etcd) as again:
        assert job_id in [d["metadata"]["name"] for d in again.downloadjobs()]
        response = httpx.get(f"{again.api_url}/v1/download/status/{job_id}", timeout=TIMEOUT)
        assert response.status_code == 200 and response.json()["status"] == "completed"
