"""The worker's bundle: a valid ZIP, streamed into S3, all or nothing."""

import hashlib
import io
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from downloadjobs_worker.bundle import Progress, Source, locate, write_zip
from downloadjobs_worker.upload import MultipartWriter

PART = 5 * 1024 * 1024


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="src")
        client.create_bucket(Bucket="out")
        yield client


def put(s3: Any, file_id: int, data: bytes) -> None:
    s3.put_object(Bucket="src", Key=f"files/{file_id}.zip", Body=data)


def build(
    s3: Any, ids: list[int], key: str = "b.zip"
) -> tuple[MultipartWriter, list[int], list[int]]:
    sources, missing = locate(s3, "src", {i: f"files/{i}.zip" for i in ids})
    progress = Progress(files_total=len(ids), bytes_total=sum(s.size for s in sources))
    seen: list[int] = []
    with MultipartWriter(s3, "out", key, PART) as out:
        write_zip(
            out,
            sources,
            lambda src: s3.get_object(Bucket="src", Key=src.key)["Body"],
            progress,
            lambda p: seen.append(p.percent),
        )
        out.complete()
    return out, missing, seen


def test_bundle_holds_the_sources_in_request_order(s3: Any) -> None:
    data = {70003: b"c" * 100, 70001: b"a" * (6 * 1024 * 1024 + 7), 70002: b""}
    for file_id, content in data.items():
        put(s3, file_id, content)
    out, missing, seen = build(s3, [70003, 99999, 70001, 70002])

    assert missing == [99999]
    body = s3.get_object(Bucket="out", Key="b.zip")["Body"].read()
    assert len(body) == out.size
    assert hashlib.sha256(body).hexdigest() == out.sha256
    with zipfile.ZipFile(io.BytesIO(body)) as bundle:
        assert bundle.testzip() is None
        assert bundle.namelist() == ["70003.zip", "70001.zip", "70002.zip"]
        for file_id, content in data.items():
            assert bundle.read(f"{file_id}.zip") == content
            assert bundle.getinfo(f"{file_id}.zip").compress_type == zipfile.ZIP_STORED
    assert seen == sorted(seen) and seen[-1] == 100


def test_a_failed_build_leaves_nothing_at_the_key(s3: Any) -> None:
    put(s3, 70001, b"x" * (6 * 1024 * 1024))
    sources = [Source(70001, "files/70001.zip", 6 * 1024 * 1024)]

    class Broken:
        def iter_chunks(self, size: int) -> Iterator[bytes]:
            yield b"x" * size
            raise ConnectionResetError("source went away")

    with pytest.raises(ConnectionResetError), MultipartWriter(s3, "out", "b.zip", PART) as out:
        write_zip(out, sources, lambda _: Broken(), Progress(1, 1), lambda _: None)
        out.complete()
    assert s3.list_objects_v2(Bucket="out").get("KeyCount") == 0
    assert s3.list_multipart_uploads(Bucket="out").get("Uploads", []) == []


def test_locate_tells_present_from_missing(s3: Any) -> None:
    put(s3, 70001, b"abc")
    present, missing = locate(s3, "src", {70002: "files/70002.zip", 70001: "files/70001.zip"})
    assert present == [Source(70001, "files/70001.zip", 3)]
    assert missing == [70002]


def test_progress_is_by_bytes() -> None:
    progress = Progress(files_total=2, bytes_total=1000)
    progress.bytes_done = 250
    assert progress.percent == 25
    assert Progress(files_total=1, bytes_total=0, files_done=1).percent == 100
