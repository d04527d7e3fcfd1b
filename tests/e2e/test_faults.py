"""
Faults: a flaky S3 (30% of requests answered 503 SlowDown or 500) and a worker
killed mid-upload. Jobs still complete, and no reader ever sees a partial bundle.
"""

import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from downloadjobs import s3
from downloadjobs_embedded import s3server
from downloadjobs_embedded.stack import Stack
from tests.e2e.client import initiate, poll, status
from tests.e2e.support import running_stack, wait_for


@pytest.fixture(scope="module")
def flaky(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    operator = {"DOWNLOADJOBS_OPERATOR_RECONCILE_INTERVAL": "5"}
    with running_stack(
        tmp_path_factory, "flaky", delay_ms=(300, 600), operator=operator, s3_fault_rate=0.3
    ) as stack:
        yield stack


def test_jobs_complete_through_a_flaky_s3(flaky: Stack) -> None:
    batches = [[70000 + i, 70030 + i, 70060 + i] for i in range(8)]
    job_ids = [initiate(flaky.api_url, ids) for ids in batches]
    finals = [poll(flaky.api_url, j, timeout=240, interval=1.0)[0] for j in job_ids]
    assert [f["status"] for f in finals] == ["completed"] * len(job_ids), finals
    assert flaky.faults is not None
    share = flaky.faults.injected / (flaky.faults.injected + flaky.faults.passed)
    assert 0.2 < share < 0.4, f"{flaky.faults.injected} injected, {flaky.faults.passed} passed"


def test_worker_killed_mid_upload_completes_on_the_next_attempt(flaky: Stack) -> None:
    client = s3.client(flaky.s3_settings, credentials=s3server.BOTO_CREDENTIALS)
    job_id = initiate(flaky.api_url, list(range(70000, 70030)))
    key = flaky.s3_settings.bundle_key(flaky.namespace, job_id)
    seen: list[str] = []
    stop = threading.Event()

    def watch_key() -> None:
        while not stop.is_set():
            try:
                head = client.head_object(Bucket=flaky.s3_settings.bundle_bucket, Key=key)
                seen.append(head["ETag"])
            except ClientError:
                pass
            stop.wait(0.1)

    watcher = threading.Thread(target=watch_key)
    watcher.start()
    try:
        wait_for(
            lambda: 10 < status(flaky.api_url, job_id)["progress"] < 90, what="an upload underway"
        )
        pids = [pid for pod, pid in flaky.pod_processes() if job_id in pod]
        assert len(pids) == 1
        os.killpg(pids[0], signal.SIGKILL)
        final = poll(flaky.api_url, job_id, timeout=240, interval=1.0)[0]
    finally:
        stop.set()
        watcher.join()
    assert final["status"] == "completed", final
    assert final["attempts"] == 2
    head: dict[str, Any] = client.head_object(Bucket=flaky.s3_settings.bundle_bucket, Key=key)
    assert set(seen) <= {head["ETag"]}, "only the complete bundle was ever visible"
    assert head["ContentLength"] == final["result"]["size"]
