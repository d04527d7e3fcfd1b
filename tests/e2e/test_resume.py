"""
Resumption on the dev stack: the worker SIGKILLed at about 80 % of a multi-part
bundle, the Job's next pod continues its upload after the last checkpointed part.
The bundle is a valid ZIP of the sources byte for byte, S3's full-object CRC-32
matches it, and the bundle key never shows anything but the final object.
"""

import base64
import contextlib
import io
import json
import os
import signal
import threading
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from downloadjobs import s3
from downloadjobs_embedded import s3server
from downloadjobs_embedded.stack import Stack
from tests.e2e.client import initiate, poll, status
from tests.e2e.support import running_stack, wait_for
from tests.unit.zipcheck import unzip_test

IDS = list(s3server.SAMPLE_IDS)  # 100 files, 28 MiB: six 5 MiB parts


@pytest.fixture(scope="module")
def resuming(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    worker = {
        "DOWNLOADJOBS_WORKER_DELAY_MIN_MS": "150",
        "DOWNLOADJOBS_WORKER_DELAY_MAX_MS": "250",
        "DOWNLOADJOBS_WORKER_PART_SIZE": str(5 * 1024 * 1024),
        "DOWNLOADJOBS_WORKER_PROGRESS_INTERVAL": "0.2",
    }
    operator = {"DOWNLOADJOBS_OPERATOR_WORKER_ENV": json.dumps(worker)}
    with running_stack(tmp_path_factory, "resume", operator=operator) as stack:
        yield stack


def downloadjob(stack: Stack, job_id: str) -> dict[str, Any]:
    (body,) = [d for d in stack.downloadjobs() if d["metadata"]["name"] == job_id]
    return body


def test_a_worker_killed_at_80_percent_is_resumed_by_the_next_pod(
    resuming: Stack, tmp_path: Path
) -> None:
    stack = resuming
    client = s3.client(stack.s3_settings, credentials=s3server.BOTO_CREDENTIALS)
    bucket = stack.s3_settings.bundle_bucket
    job_id = initiate(stack.api_url, IDS)
    key = stack.s3_settings.bundle_key(stack.namespace, job_id)
    seen: list[str] = []
    stop = threading.Event()

    def watch_key() -> None:
        while not stop.is_set():
            with contextlib.suppress(ClientError):
                seen.append(client.head_object(Bucket=bucket, Key=key)["ETag"])
            stop.wait(0.1)

    watcher = threading.Thread(target=watch_key)
    watcher.start()
    try:
        wait_for(lambda: status(stack.api_url, job_id)["progress"] >= 78, timeout=120, what="80 %")
        pids = [pid for pod, pid in stack.pod_processes() if job_id in pod]
        assert len(pids) == 1
        os.killpg(pids[0], signal.SIGKILL)
        killed_at = downloadjob(stack, job_id)["status"]
        final = poll(stack.api_url, job_id, timeout=240, interval=1.0)[0]
    finally:
        stop.set()
        watcher.join()

    assert final["status"] == "completed", final
    assert final["attempts"] == 2
    resumed = downloadjob(stack, job_id)["status"]
    assert resumed["resumedFromPart"] >= 3, (killed_at, resumed)
    reasons = wait_for(
        lambda: [
            e["reason"]
            for e in stack.events()
            if e["involvedObject"]["name"] == job_id and e["reason"] == "Resumed"
        ],
        what="the Resumed event",
    )
    assert reasons == ["Resumed"]
    print(
        f"\nkilled at {killed_at['progress']} % ({killed_at.get('partsUploaded')} parts); "
        f"resumed after part {resumed['resumedFromPart']}"
    )

    head = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert set(seen) <= {head["ETag"]}, "only the complete bundle was ever visible"
    data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert len(data) == head["ContentLength"] == final["result"]["size"]
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    assert final["result"]["checksumCrc32"] == crc == head["ChecksumCRC32"]
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        assert bundle.testzip() is None
        assert bundle.namelist() == [f"{i}.zip" for i in IDS]
        for file_id in IDS:
            assert bundle.read(f"{file_id}.zip") == s3server.sample_content(file_id), file_id
    path = tmp_path / "bundle.zip"
    path.write_bytes(data)
    unzip_test(path)
    left = client.list_objects_v2(Bucket=bucket, Prefix=f"{key}.checkpoint").get("KeyCount")
    assert left == 0, "the checkpoint went with the upload"
