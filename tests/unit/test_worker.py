"""The worker's bundle: a valid ZIP, streamed into S3, all or nothing."""

import base64
import io
import threading
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from downloadjobs_worker.bundle import Prefetch, Progress, Source, locate, write_zip
from downloadjobs_worker.upload import MultipartWriter
from tests.unit.zipcheck import unzip_test

PART = 5 * 1024 * 1024


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
    assert zlib.crc32(body).to_bytes(4, "big") == base64.b64decode(out.crc32)
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
    etag = '"900150983cd24fb0d6963f7d28e17f72"'  # what a later GET must still match
    assert present == [Source(70001, "files/70001.zip", 3, etag)]
    assert missing == [70002]


def test_progress_is_by_bytes() -> None:
    progress = Progress(files_total=2, bytes_total=1000)
    progress.bytes_done = 250
    assert progress.percent == 25
    assert Progress(files_total=1, bytes_total=0, files_done=1).percent == 100


class Opened:
    """A source body that records whether it was closed."""

    def __init__(self, file_id: int) -> None:
        self.file_id = file_id
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Opener:
    """Opens sources, recording the order; fails for ``broken`` ids."""

    def __init__(self, broken: int | None = None) -> None:
        self.opened: list[int] = []
        self.bodies: list[Opened] = []
        self.broken = broken
        self.lock = threading.Lock()

    def __call__(self, source: Source) -> Any:
        with self.lock:
            self.opened.append(source.file_id)
        if source.file_id == self.broken:
            raise ConnectionResetError("source went away")
        body = Opened(source.file_id)
        self.bodies.append(body)
        return body


def sources(count: int) -> list[Source]:
    return [Source(i, f"{i}.zip", 1) for i in range(1, count + 1)]


def test_prefetch_opens_a_bounded_number_of_files_ahead_in_order() -> None:
    opener = Opener()
    taken: list[int] = []
    with Prefetch(sources(6), opener, ahead=2) as prefetch:
        for _ in range(6):
            taken.append(prefetch.next_body().file_id)
            # the one taken, and at most two more requested: never the whole list
            assert len(opener.opened) <= len(taken) + 2
    assert taken == [1, 2, 3, 4, 5, 6]
    assert sorted(opener.opened) == taken


def test_prefetch_raises_an_open_error_where_the_writer_reaches_it() -> None:
    opener = Opener(broken=2)
    with Prefetch(sources(3), opener, ahead=2) as prefetch:
        assert prefetch.next_body().file_id == 1
        with pytest.raises(ConnectionResetError):
            prefetch.next_body()


def test_prefetch_closes_what_the_writer_never_took() -> None:
    opener = Opener()
    with Prefetch(sources(5), opener, ahead=3) as prefetch:
        first = prefetch.next_body()
    assert not first.closed  # the writer closes what it takes
    assert opener.bodies[1:] and all(body.closed for body in opener.bodies[1:])
    assert not any(t.name.startswith("prefetch") for t in threading.enumerate())


def test_a_failed_source_read_closes_its_body_and_the_ones_opened_ahead(s3: Any) -> None:
    class Broken:
        closed = False

        def iter_chunks(self, size: int) -> Iterator[bytes]:
            yield b"x" * 10
            raise ConnectionResetError("source went away")

        def close(self) -> None:
            self.closed = True

    bodies = [Broken(), Broken(), Broken()]
    srcs = [Source(i, f"{i}.zip", 20) for i in range(3)]
    with pytest.raises(ConnectionResetError), MultipartWriter(s3, "out", "b.zip", PART) as out:
        write_zip(out, srcs, lambda s: bodies[s.file_id], Progress(3, 60), lambda _: None)
        out.complete()
    assert all(body.closed for body in bodies[:2])  # the failed one and the one opened ahead
    assert s3.list_objects_v2(Bucket="out").get("KeyCount") == 0
