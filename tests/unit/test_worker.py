"""The worker's bundle: a valid ZIP, streamed into S3, all or nothing."""

import hashlib
import io
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from downloadjobs_worker.bundle import Progress, ReadAhead, Source, locate, write_zip
from downloadjobs_worker.upload import MultipartWriter
from tests.unit.zipcheck import unzip_test

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
    with MultipartWriter(s3, "out", key, PART, concurrency=3) as out:
        write_zip(
            out,
            sources,
            lambda src: s3.get_object(Bucket="src", Key=src.key)["Body"],
            progress,
            lambda p: seen.append(p.percent),
        )
        out.complete()
    return out, missing, seen


def test_bundle_holds_the_sources_in_request_order(s3: Any, tmp_path: Path) -> None:
    data = {
        70003: b"c" * 100,
        70001: b"a" * (6 * 1024 * 1024 + 7),
        70002: b"",
        70004: bytes(range(256)) * (70 * 1024),  # 17.5 MiB: parts go up concurrently
    }
    for file_id, content in data.items():
        put(s3, file_id, content)
    out, missing, seen = build(s3, [70003, 99999, 70001, 70002, 70004])

    assert missing == [99999]
    body = s3.get_object(Bucket="out", Key="b.zip")["Body"].read()
    assert len(body) == out.size
    assert hashlib.sha256(body).hexdigest() == out.sha256
    with zipfile.ZipFile(io.BytesIO(body)) as bundle:
        assert bundle.testzip() is None
        assert bundle.namelist() == ["70003.zip", "70001.zip", "70002.zip", "70004.zip"]
        for file_id, content in data.items():
            assert bundle.read(f"{file_id}.zip") == content
            assert bundle.getinfo(f"{file_id}.zip").compress_type == zipfile.ZIP_STORED
    assert seen == sorted(seen) and seen[-1] == 100
    (tmp_path / "b.zip").write_bytes(body)
    listing = unzip_test(tmp_path / "b.zip")
    for file_id in data:
        assert f"testing: {file_id}.zip" in listing


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


class Chunks:
    """A source body that yields its chunks and counts how far the producer got."""

    def __init__(self, chunks: list[bytes], fail_after: int | None = None) -> None:
        self._chunks = chunks
        self._fail_after = fail_after
        self.produced = 0
        self.closed = False

    def iter_chunks(self, size: int = 0) -> Iterator[bytes]:
        for index, chunk in enumerate(self._chunks):
            if index == self._fail_after:
                raise ConnectionResetError("source went away")
            self.produced += 1
            yield chunk

    def close(self) -> None:
        self.closed = True


def test_read_ahead_keeps_order_and_stays_bounded() -> None:
    bodies = {
        1: Chunks([b"a%d" % i for i in range(40)]),
        2: Chunks([]),
        3: Chunks([b"c"]),
    }
    sources = [Source(i, f"{i}.zip", 0) for i in bodies]
    read: dict[int, list[bytes]] = {}
    with ReadAhead(sources, lambda src: bodies[src.file_id], limit=4, chunk_size=1) as reader:
        for source in sources:
            read[source.file_id] = []
            for chunk in reader.chunks():
                read[source.file_id].append(chunk)
                # at most the queue (4 chunks) and the one in the producer's hands are ahead
                produced = sum(body.produced for body in bodies.values())
                consumed = sum(map(len, read.values()))
                assert produced - consumed <= 4 + 1
    assert read == {i: body._chunks for i, body in bodies.items()}
    assert all(body.closed for body in bodies.values())


def test_read_ahead_raises_a_download_error_where_the_writer_reaches_it() -> None:
    body = Chunks([b"x", b"y", b"z"], fail_after=2)
    sources = [Source(1, "1.zip", 3)]
    seen: list[bytes] = []
    with (
        ReadAhead(sources, lambda _: body, limit=8, chunk_size=1) as reader,
        pytest.raises(ConnectionResetError),
    ):
        seen.extend(reader.chunks())
    assert seen == [b"x", b"y"]
    assert body.closed


def test_read_ahead_stops_its_thread_when_the_writer_gives_up() -> None:
    endless = Chunks([b"z"] * 10_000)
    with ReadAhead([Source(1, "1.zip", 10_000)], lambda _: endless, limit=2, chunk_size=1) as r:
        next(r.chunks())
    assert not any(t.name == "read-ahead" for t in threading.enumerate())
    assert endless.closed and endless.produced < 10
