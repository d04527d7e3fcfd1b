"""
One worker run in process, against moto's S3 and a fake Kubernetes API: what
worker tests share (no test module imports another).
"""

from typing import Any

import msgspec

from downloadjobs.settings import S3Settings
from downloadjobs_worker import main
from downloadjobs_worker.reporter import StatusReporter
from downloadjobs_worker.settings import WorkerSettings

MiB = 1024 * 1024
S3 = S3Settings(source_bucket="src", bundle_bucket="out")
KEY = S3.bundle_key("ns", "job")


class FakeApi:
    """The DownloadJob as the Kubernetes API serves it, and the status patches it receives."""

    def __init__(self, file_ids: list[int]) -> None:
        self.body = {"spec": {"fileIds": file_ids}}
        self.patches: list[dict[str, Any]] = []

    def get(self, *args: Any) -> dict[str, Any]:
        return self.body

    def patch_status(self, *args: Any) -> None:
        self.patches.append(args[-1]["status"])


def settings(**overrides: Any) -> WorkerSettings:
    values: dict[str, Any] = {
        "job_name": "job",
        "job_namespace": "ns",
        "worker_part_size": 5 * MiB,
        "worker_upload_concurrency": 3,
        "worker_prefetch": 2,
        **overrides,
    }
    return msgspec.convert(values, WorkerSettings)


def seed(s3: Any) -> dict[int, bytes]:
    data = {
        70001: bytes(range(256)) * (48 * 1024 + 3),  # 12 MiB and a bit: several parts
        70002: b"small",
        70003: b"\x00" * (3 * MiB),
    }
    for file_id, content in data.items():
        s3.put_object(Bucket="src", Key=S3.source_key(file_id), Body=content)
    return data


def run(api: FakeApi, worker: WorkerSettings) -> Any:
    reporter = StatusReporter(api, "ns", "job", interval=1.0)
    return main.build(worker, S3, reporter)
