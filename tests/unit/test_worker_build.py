"""One worker run against S3 (moto, in process): what the status says is what S3 holds."""

import base64
import io
import zipfile
import zlib
from typing import Any

import pytest
from botocore.exceptions import ClientError

from downloadjobs import s3 as s3_module
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
    return WorkerSettings.model_validate(values)


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


def test_the_status_describes_the_uploaded_bundle(s3: Any) -> None:
    data = seed(s3)
    api = FakeApi([70002, 90000, 70001, 70003])
    result = run(api, settings())

    body = s3.get_object(Bucket="out", Key=KEY)["Body"].read()
    final = api.patches[-1]
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    assert final["result"]["checksumCrc32"] == crc == result.checksum_crc32
    head = s3.head_object(Bucket="out", Key=KEY, ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == crc and head["ChecksumType"] == "FULL_OBJECT", "S3 checked it"
    assert final["result"]["size"] == len(body)
    assert final["result"]["missingFileIds"] == [90000]
    assert final["progress"] == 100 and final["filesDone"] == final["filesTotal"] == 4
    assert all(p.get("progress", 0) < 100 for p in api.patches[:-1])
    with zipfile.ZipFile(io.BytesIO(body)) as bundle:
        assert bundle.testzip() is None
        assert bundle.namelist() == ["70002.zip", "70001.zip", "70003.zip"]
        for file_id, content in data.items():
            info = bundle.getinfo(f"{file_id}.zip")
            assert info.compress_type == zipfile.ZIP_STORED
            assert bundle.read(info) == content


def test_compression_is_a_setting(s3: Any) -> None:
    data = seed(s3)
    run(FakeApi(list(data)), settings(worker_compression="deflated"))
    body = s3.get_object(Bucket="out", Key=KEY)["Body"].read()
    with zipfile.ZipFile(io.BytesIO(body)) as bundle:
        for file_id, content in data.items():
            info = bundle.getinfo(f"{file_id}.zip")
            assert info.compress_type == zipfile.ZIP_DEFLATED
            assert bundle.read(info) == content
    assert len(body) < sum(map(len, data.values())) // 10


def test_a_failed_upload_leaves_no_bundle_but_a_checkpoint_to_resume_from(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(s3)
    real_client = s3_module.client

    class FailingParts:
        def __init__(self, client: Any) -> None:
            self._client = client

        def __getattr__(self, name: str) -> Any:
            return getattr(self._client, name)

        def upload_part(self, **kwargs: Any) -> Any:
            if kwargs["PartNumber"] == 2:
                raise ClientError({"Error": {"Code": "SlowDown"}}, "UploadPart")
            return self._client.upload_part(**kwargs)

    monkeypatch.setattr(main.s3, "client", lambda *a, **kw: FailingParts(real_client(*a, **kw)))
    api = FakeApi([70001, 70002, 70003])
    with pytest.raises(ClientError):
        run(api, settings(worker_upload_concurrency=1))
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="out").get("Contents", [])]
    assert keys == [f"{KEY}.checkpoint"], "no bundle, only the checkpoint after part 1"
    (upload,) = s3.list_multipart_uploads(Bucket="out")["Uploads"]  # kept for the next pod
    assert all("result" not in patch for patch in api.patches)
    assert api.patches[-1]["uploadId"] == upload["UploadId"]
