"""
Checkpoints without servers: the ZIP writer restarted from any place it marked
writes exactly the bytes an uninterrupted run wrote from there on (so a bundle
made of two pods' parts is one consistent stream), and :func:`checkpoint.plan`
refuses every checkpoint that does not match the sources or the upload.
"""

import io
import zipfile
from collections.abc import Iterator

import msgspec
import pytest

from downloadjobs_worker import checkpoint, zipstate
from downloadjobs_worker.bundle import Progress, Source, write_zip
from downloadjobs_worker.checkpoint import Checkpoint, Part, Point, Restart, SourceState

MiB = 1024 * 1024
STAMP = (2026, 11, 29, 12, 0, 0)
SIZES = [int(2.5 * MiB), 0, 17, 3 * MiB, MiB + 1]
CONTENT = {10000 + i: bytes([i + 1]) * size for i, size in enumerate(SIZES)}
SOURCES = [Source(i, f"files/{i}.zip", len(data), f'"etag-{i}"') for i, data in CONTENT.items()]


class Tail:
    """An append-only sink whose first byte sits at ``start`` of the bundle."""

    def __init__(self, start: int = 0) -> None:
        self.start = start
        self.buffer = io.BytesIO()
        self.marks: list[Point] = []

    def write(self, data: bytes, /) -> int:
        return self.buffer.write(data)

    def tell(self) -> int:
        return self.start + self.buffer.tell()

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def mark(self, index: int, offset: int, entry_crc: int, header_offset: int) -> None:
        self.marks.append(
            Point(
                stream=self.tell(),
                index=index,
                offset=offset,
                entry_crc=entry_crc,
                header_offset=header_offset,
                bundle_crc=0,
            )
        )


class Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def iter_chunks(self, chunk_size: int = MiB) -> Iterator[bytes]:
        for start in range(0, len(self.data), chunk_size):
            yield self.data[start : start + chunk_size]


def bundle(
    out: Tail, compression: int, entries: list[zipstate.Entry], resume: Point | None = None
) -> None:
    write_zip(
        out,
        SOURCES,
        lambda s: Body(CONTENT[s.file_id]),
        Progress(files_total=len(SOURCES), bytes_total=sum(SIZES)),
        lambda _: None,
        compression=compression,
        stamp=STAMP,
        entries=entries,
        resume=resume,
        open_from=lambda s, offset: Body(CONTENT[s.file_id][offset:]),
        mark=out.mark,
    )


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_a_writer_restarted_at_any_mark_writes_the_same_bytes(compression: int) -> None:
    whole, entries = Tail(), []
    bundle(whole, compression, entries)
    data = whole.buffer.getvalue()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
    midway = [m for m in whole.marks if m.offset]
    assert midway if compression == zipfile.ZIP_STORED else not midway
    assert len(whole.marks) > len(SOURCES)
    for point in whole.marks:
        tail = Tail(point.stream)
        bundle(tail, compression, list(entries[: point.index]), point)
        assert data[: point.stream] + tail.buffer.getvalue() == data, point


def saved(**changes: object) -> Checkpoint:
    base = Checkpoint(
        upload_id="u1",
        part_size=5 * MiB,
        parts=1,
        compression=zipfile.ZIP_STORED,
        stamp=STAMP,
        sources=STATES,
        missing=[90000],
        point=Point(
            stream=5 * MiB - 9, index=1, offset=0, entry_crc=0, header_offset=0, bundle_crc=7
        ),
        entries=[ENTRY],
    )
    return msgspec.structs.replace(base, **changes)


STATES = [SourceState(file_id=s.file_id, key=s.key, size=s.size, etag=s.etag) for s in SOURCES]
ENTRY = zipstate.Entry(
    name="10000.zip",
    header_offset=0,
    crc=1,
    compress_size=1,
    file_size=1,
    compress_type=0,
    flag_bits=8,
    extract_version=20,
    create_version=20,
    external_attr=0,
    date_time=STAMP,
)
PARTS = [Part(number=1, etag='"p1"', size=5 * MiB), Part(number=2, etag='"p2"', size=5 * MiB)]


def verdict(cp: Checkpoint, **overrides: object) -> Checkpoint | Restart:
    args: dict[str, object] = {
        "sources": STATES,
        "missing": [90000],
        "listed": PARTS,
        "part_size": 5 * MiB,
        "compression": zipfile.ZIP_STORED,
        **overrides,
    }
    return checkpoint.plan(cp, **args)  # type: ignore[arg-type]


def test_a_matching_checkpoint_is_resumed_and_later_parts_are_ignored() -> None:
    assert verdict(saved()) == saved()


@pytest.mark.parametrize(
    ("case", "overrides", "reason"),
    [
        (
            "another etag",
            {"sources": [msgspec.structs.replace(STATES[0], etag='"x"'), *STATES[1:]]},
            "SourceChanged",
        ),
        (
            "another size",
            {"sources": [msgspec.structs.replace(STATES[0], size=1), *STATES[1:]]},
            "SourceChanged",
        ),
        ("a file appeared", {"sources": STATES, "missing": []}, "SourceChanged"),
        ("the upload is gone", {"listed": None}, "UploadExpired"),
        ("a part is missing", {"listed": PARTS[1:]}, "CheckpointMismatch"),
        (
            "a part is short",
            {"listed": [msgspec.structs.replace(PARTS[0], size=5)]},
            "CheckpointMismatch",
        ),
        ("another part size", {"part_size": 6 * MiB}, "CheckpointMismatch"),
        ("another compression", {"compression": zipfile.ZIP_DEFLATED}, "CheckpointMismatch"),
    ],
)
def test_a_checkpoint_that_does_not_match_means_a_clean_restart(
    case: str, overrides: dict[str, object], reason: str
) -> None:
    outcome = verdict(saved(), **overrides)
    assert isinstance(outcome, Restart) and outcome.reason == reason, case


@pytest.mark.parametrize(
    "changes",
    [
        {"parts": 0},
        {
            "point": Point(
                stream=5 * MiB + 1, index=1, offset=0, entry_crc=0, header_offset=0, bundle_crc=0
            )
        },
        {"entries": []},
        {
            "point": Point(
                stream=10, index=0, offset=SIZES[0], entry_crc=0, header_offset=0, bundle_crc=0
            )
        },
        {"version": 2},
    ],
)
def test_a_checkpoint_that_contradicts_itself_means_a_clean_restart(
    changes: dict[str, object],
) -> None:
    outcome = verdict(saved(**changes))
    assert isinstance(outcome, Restart) and outcome.reason == "CheckpointMismatch"


def test_nothing_is_written_after_an_error_so_no_checkpoint_covers_garbage() -> None:
    class Broken(Body):
        def iter_chunks(self, chunk_size: int = MiB) -> Iterator[bytes]:
            yield self.data[:MiB]
            raise OSError("connection reset")

    out = Tail()
    with pytest.raises(OSError):
        write_zip(
            out,
            SOURCES,
            lambda s: Broken(CONTENT[s.file_id]),
            Progress(files_total=len(SOURCES), bytes_total=sum(SIZES)),
            lambda _: None,
        )
    header = 30 + len(SOURCES[0].entry_name)  # the local header, then the one chunk
    assert out.buffer.getvalue()[header:] == CONTENT[SOURCES[0].file_id][:MiB]
