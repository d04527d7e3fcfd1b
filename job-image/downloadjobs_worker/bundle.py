"""
Building the bundle: source objects streamed one after another into a ZIP.

The ZIP is written to an unseekable stream (the multipart upload), so every
entry carries a data descriptor; the standard library's ``zipfile`` switches
ZIP64 on per entry from the size known by the HEAD request, and for the archive
when it grows past 4 GiB or 65,535 entries.

The writer can start over from a checkpoint's :class:`~checkpoint.Point`
(``resume``): it rebuilds the archive's state there (:mod:`zipstate`), continues
the current source from its offset, and writes the same bytes the first pod
would have written. Before each write it tells ``mark`` where it is, for the
sink to remember at each part boundary.

While the ZIP writer copies one file, the GETs of the next files are already
open (:class:`Prefetch`, bounded) and the upload sends earlier parts on its own
threads: downloads, CRC32/SHA-256 and uploads overlap instead of taking turns.
"""

import collections
import concurrent.futures
import contextlib
import dataclasses
import random
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from downloadjobs import s3
from downloadjobs_worker import zipstate
from downloadjobs_worker.checkpoint import Point

CHUNK = 1024 * 1024  # per-chunk Python work is noise at this size


class Sink(Protocol):
    """Where the ZIP goes: an unseekable, append-only byte stream."""

    def write(self, data: bytes, /) -> int: ...
    def tell(self) -> int: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class Body(Protocol):
    """An open source object: botocore's ``StreamingBody``."""

    def iter_chunks(self, chunk_size: int = ...) -> Iterator[bytes]: ...


@dataclasses.dataclass(frozen=True)
class Source:
    file_id: int
    key: str
    size: int
    etag: str = ""

    @property
    def entry_name(self) -> str:
        return f"{self.file_id}.zip"


@dataclasses.dataclass
class Progress:
    files_total: int
    bytes_total: int
    files_done: int = 0
    bytes_done: int = 0
    bytes_read: int = 0  # by this pod: bytes_done less what an earlier pod wrote

    @property
    def percent(self) -> int:
        if self.bytes_total == 0:
            return 100 if self.files_done >= self.files_total else 0
        return min(100, self.bytes_done * 100 // self.bytes_total)


def locate(
    client: Any, bucket: str, keys: dict[int, str], *, workers: int = 8
) -> tuple[list[Source], list[int]]:
    """HEAD every source: the ones present (in request order) and the missing ids."""
    found = s3.heads(client, bucket, keys, workers=workers)
    present: list[Source] = []
    missing: list[int] = []
    for file_id, key in keys.items():
        head = found[file_id]
        if head is None:
            missing.append(file_id)
        else:
            present.append(Source(file_id, key, head.size, head.etag))
    return present, missing


class Prefetch:
    """
    Opens the GETs of the next ``ahead`` sources while the writer streams the current one.

    Each file's first bytes are then already on their way (or waiting in the socket)
    when the writer reaches it, so a thousand small files do not cost a thousand
    round trips in a row. The bytes themselves are read on the writer's thread:
    handing every chunk across threads costs a wake-up per chunk, which a busy node
    turns into stalls. At most ``ahead`` responses are open beyond the current one.
    """

    def __init__(
        self, sources: Sequence[Source], open_source: Callable[[Source], Body], *, ahead: int
    ) -> None:
        self._sources = list(sources)
        self._open = open_source
        self._ahead = max(1, ahead)
        self._pool = concurrent.futures.ThreadPoolExecutor(self._ahead, "prefetch")
        self._pending: collections.deque[concurrent.futures.Future[Body]] = collections.deque()
        self._next = 0

    def __enter__(self) -> "Prefetch":
        while self._next < len(self._sources) and len(self._pending) < self._ahead:
            self._submit()
        return self

    def _submit(self) -> None:
        self._pending.append(self._pool.submit(self._open, self._sources[self._next]))
        self._next += 1

    def next_body(self) -> Body:
        """The open body of the next source, in request order; its open error, if any."""
        future = self._pending.popleft()
        if self._next < len(self._sources):
            self._submit()
        return future.result()

    def __exit__(self, *_: object) -> None:
        """Close whatever was opened ahead and not used (the writer failed)."""
        for future in self._pending:
            future.cancel()
        self._pool.shutdown(wait=True)
        for future in self._pending:
            if not future.cancelled() and future.exception() is None:
                _close(future.result())


def _close(body: Body) -> None:
    close = getattr(body, "close", None)
    if close is not None:
        close()


class _Gate:
    """
    The sink as ``zipfile`` sees it, shut the moment an error escapes the writer.

    Unwinding, ``zipfile`` still writes a data descriptor and a central directory
    of what it has: garbage that must never reach a part a checkpoint covers.
    """

    def __init__(self, out: Sink) -> None:
        self._out = out
        self._shut = False

    def write(self, data: bytes, /) -> int:
        return len(data) if self._shut else self._out.write(data)

    def tell(self) -> int:
        return self._out.tell()

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self._shut = True
            raise


def _no_mark(index: int, offset: int, entry_crc: int, header_offset: int) -> None:
    pass


def write_zip(
    out: Sink,
    sources: list[Source],
    open_source: Callable[[Source], Body],
    progress: Progress,
    on_progress: Callable[[Progress], None],
    *,
    compression: int = zipfile.ZIP_STORED,
    delay_ms: tuple[int, int] = (0, 0),
    prefetch: int = 2,
    stamp: zipstate.Stamp | None = None,
    entries: list[zipstate.Entry] | None = None,
    resume: Point | None = None,
    open_from: Callable[[Source, int], Body] | None = None,
    mark: Callable[[int, int, int, int], None] = _no_mark,
) -> None:
    """
    Stream each source into ``out`` as one ZIP entry, calling ``on_progress`` as bytes flow.

    Each chunk is touched once on this thread: ``zipfile`` folds it into the
    entry's CRC32 (and compresses it when asked), ``out`` into the bundle's
    checksums and its part buffer, all in C; ``out`` uploads full parts on its
    own threads meanwhile, and :class:`Prefetch` opens the next files.

    ``entries`` collects each finished entry's state (a resumed run passes those
    finished before ``resume``); ``open_from`` opens the source ``resume`` stops
    in at its offset; every entry carries ``stamp``, so that all pods agree.
    """
    stamp = stamp or zipstate.now_stamp()
    entries = [] if entries is None else entries
    first, skip = (resume.index, resume.offset) if resume else (0, 0)
    progress.files_done += first
    progress.bytes_done += sum(s.size for s in sources[:first]) + skip
    on_progress(progress)  # the first status write: never 0 % after a resume at 80 %
    stored = compression == zipfile.ZIP_STORED

    def opener(source: Source) -> Body:
        if skip and open_from is not None and source is sources[first]:
            return open_from(source, skip)
        return open_source(source)

    gate = _Gate(out)
    with (
        Prefetch(sources[first:], opener, ahead=prefetch) as bodies,
        zipfile.ZipFile(gate, mode="w", compression=compression, allowZip64=True) as archive,
        gate.guard(),
    ):
        zipstate.restore(archive, entries)
        for index in range(first, len(sources)):
            source = sources[index]
            written = skip if index == first else 0
            if not written:
                mark(index, 0, 0, 0)
                if delay_ms[1] > 0:  # the original service's slowness, with a heartbeat
                    pause = random.uniform(*delay_ms) / 1000
                    deadline = time.monotonic() + pause
                    while (left := deadline - time.monotonic()) > 0:
                        time.sleep(min(left, 0.5))
                        on_progress(progress)
            body = bodies.next_body()
            if written:
                assert resume is not None
                info = zipstate.reopen_info(
                    source.entry_name, source.size, stamp, resume.header_offset
                )
                handle = zipstate.reopen(archive, info, written=written, crc=resume.entry_crc)
            else:
                info = zipstate.open_info(source.entry_name, source.size, stamp, compression)
                handle = archive.open(info, mode="w")
            try:
                with handle as entry, gate.guard():
                    for chunk in body.iter_chunks(CHUNK):
                        if stored and written:  # a deflater's state cannot be saved
                            mark(index, written, zipstate.entry_crc(entry), info.header_offset)
                        entry.write(chunk)
                        written += len(chunk)
                        progress.bytes_done += len(chunk)
                        progress.bytes_read += len(chunk)
                        on_progress(progress)
            finally:
                _close(body)
            entries.append(zipstate.record(info))
            progress.files_done += 1
            on_progress(progress)
        mark(len(sources), 0, 0, 0)
