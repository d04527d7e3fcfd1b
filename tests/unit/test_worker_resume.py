"""
A pod that dies mid-upload, then its replacement (moto, in process): it resumes
after the checkpoint when it may, and starts afresh when the source changed, the
checkpoint does not match S3, or the upload expired; the bundle is valid either way.
"""

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

CHECKPOINT = f"{KEY}.checkpoint"
IDS = [70001, 70002, 70003]


class Crash(Exception):
    """The pod dies (in the test: the upload of one part fails)."""


@pytest.fixture
def crash_at_part(s3: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make the next run fail when it uploads part ``n``; later runs go through."""
    real_client = s3_module.client
    fail = {"part": 0}

    class Failing:
        def __init__(self, client: Any) -> None:
            self._client = client

        def __getattr__(self, name: str) -> Any:
            return getattr(self._client, name)

        def upload_part(self, **kwargs: Any) -> Any:
            if kwargs["PartNumber"] == fail["part"]:
                fail["part"] = 0
                raise Crash(f"killed at part {kwargs['PartNumber']}")
            return self._client.upload_part(**kwargs)

    monkeypatch.setattr(main.s3, "client", lambda *a, **kw: Failing(real_client(*a, **kw)))

    def arm(part: int) -> None:
        fail["part"] = part

    return arm


def crash_then_rerun(
    s3: Any, crash_at_part: Any, between: Any = None, orphans: int = 0
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Crash a build at part 4, do ``between``, build again: (final status, first status)."""
    data = seed(s3)
    data[70001] = data[70001] * 2  # 24 MiB: parts 1-4 in the first file, 5 MiB each
    s3.put_object(Bucket="src", Key=f"files/{70001}.zip", Body=data[70001])
    crash_at_part(4)
    with pytest.raises(Crash):
        run(FakeApi(IDS), settings(worker_upload_concurrency=1))
    assert s3.list_multipart_uploads(Bucket="out")["Uploads"], "the upload is kept"
    if between is not None:
        between()
    api = FakeApi(IDS)
    run(api, settings(worker_upload_concurrency=1))
    body: bytes = s3.get_object(Bucket="out", Key=KEY)["Body"].read()
    with zipfile.ZipFile(io.BytesIO(body)) as bundle:
        assert bundle.testzip() is None
        fresh = {
            f"{i}.zip": s3.get_object(Bucket="src", Key=f"files/{i}.zip")["Body"].read()
            for i in IDS
        }
        assert {name: bundle.read(name) for name in bundle.namelist()} == fresh
    final = api.patches[-1]
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    assert final["result"]["checksumCrc32"] == crc
    assert len(s3.list_multipart_uploads(Bucket="out").get("Uploads", [])) == orphans
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="out").get("Contents", [])]
    assert keys == [KEY], "the checkpoint is gone with the upload"
    return final, api.patches[0]


def test_the_next_pod_resumes_after_the_last_checkpointed_part(s3: Any, crash_at_part: Any) -> None:
    final, first = crash_then_rerun(s3, crash_at_part)
    assert final["resumedFromPart"] == 3
    assert first["progress"] >= 50, "a resumed job never shows 0 % again"
    head = s3.head_object(Bucket="out", Key=KEY, ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == final["result"]["checksumCrc32"]


def test_a_changed_source_means_a_clean_restart(s3: Any, crash_at_part: Any) -> None:
    def change() -> None:
        s3.put_object(Bucket="src", Key="files/70002.zip", Body=b"another file")

    final, _ = crash_then_rerun(s3, crash_at_part, change)
    assert "resumedFromPart" not in final


def test_a_checkpoint_that_does_not_match_the_upload_means_a_clean_restart(
    s3: Any, crash_at_part: Any
) -> None:
    def tamper() -> None:
        saved = s3.get_object(Bucket="out", Key=CHECKPOINT)["Body"].read()
        s3.put_object(Bucket="out", Key=CHECKPOINT, Body=saved.replace(b'"parts":3', b'"parts":9'))

    final, _ = crash_then_rerun(s3, crash_at_part, tamper)
    assert "resumedFromPart" not in final


def test_an_unreadable_checkpoint_means_a_clean_restart(s3: Any, crash_at_part: Any) -> None:
    def garble() -> None:
        s3.put_object(Bucket="out", Key=CHECKPOINT, Body=b"{not json")

    # whose upload it was is unknown: the operator's cleanup aborts it with the job
    final, _ = crash_then_rerun(s3, crash_at_part, garble, orphans=1)
    assert "resumedFromPart" not in final


def test_an_expired_upload_means_a_clean_restart(s3: Any, crash_at_part: Any) -> None:
    def expire() -> None:
        for upload in s3.list_multipart_uploads(Bucket="out")["Uploads"]:
            s3.abort_multipart_upload(Bucket="out", Key=KEY, UploadId=upload["UploadId"])

    final, _ = crash_then_rerun(s3, crash_at_part, expire)
    assert "resumedFromPart" not in final


def test_a_source_changed_after_the_head_fails_the_get_instead_of_mixing(s3: Any) -> None:
    seed(s3)
    etag = s3.head_object(Bucket="src", Key="files/70002.zip")["ETag"]
    s3.put_object(Bucket="src", Key="files/70002.zip", Body=b"changed meanwhile")
    with pytest.raises(ClientError) as caught:
        s3.get_object(Bucket="src", Key="files/70002.zip", IfMatch=etag)
    assert caught.value.response["Error"]["Code"] == "PreconditionFailed"
