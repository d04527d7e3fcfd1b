"""One worker run against S3 (moto, in process): what the status says is what S3 holds."""

import base64
import io
import zipfile
import zlib
from typing import Any

import pytest
from botocore.exceptions import ClientError

from downloadjobs import s3 as s3_module
from downloadjobs_worker import main
from tests.unit.worker_runs import KEY, FakeApi, run, seed, settings


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
