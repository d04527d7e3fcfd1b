"""
Building the bundle: source objects streamed one after another into a ZIP.

The ZIP is written to an unseekable stream (the multipart upload), so every
entry carries a data descriptor; the standard library's ``zipfile`` switches
ZIP64 on per entry from the size known by the HEAD request, and for the archive
when it grows past 4 GiB or 65,535 entries.

While the ZIP writer copies one file, the GETs of the next files are already
open (:class:`Prefetch`, bounded) and the upload sends earlier parts on its own
threads: downloads, CRC32/SHA-256 and uploads overlap instead of taking turns.
"""

import collections
import concurrent.futures
import dataclasses
import datetime
import random
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from botocore.exceptions import ClientError

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

    @property
    def entry_name(self) -> str:
        return f"{self.file_id}.zip"


@dataclasses.dataclass
class Progress:
    files_total: int
    bytes_total: int
    files_done: int = 0
    bytes_done: int = 0

    @property
    def percent(self) -> int:
        if self.bytes_total == 0:
            return 100 if self.files_done >= self.files_total else 0
        return min(100, self.bytes_done * 100 // self.bytes_total)


def _not_found(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


def locate(
    client: Any, bucket: str, keys: dict[int, str], *, workers: int = 8
) -> tuple[list[Source], list[int]]:
    """
    HEAD every source: the ones present (in request order) and the missing ids.

    The HEADs run ``workers`` at a time: a thousand small requests one after
    another would cost seconds of round trips before the first byte moves.
    """

    def head(key: str) -> int | None:
        try:
            return int(client.head_object(Bucket=bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if _not_found(exc):
                return None
            raise

    with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
        sizes = list(pool.map(head, keys.values()))
    present: list[Source] = []
    missing: list[int] = []
    for (file_id, key), size in zip(keys.items(), sizes, strict=True):
        if size is None:
            missing.append(file_id)
        else:
            present.append(Source(file_id, key, size))
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
) -> None:
    """
    Stream each source into ``out`` as one ZIP entry, calling ``on_progress`` as bytes flow.

    Each chunk is touched once on this thread: ``zipfile`` folds it into the
    entry's CRC32 (and compresses it when asked), ``out`` into the bundle's
    SHA-256 and its part buffer, all in C; ``out`` uploads full parts on its
    own threads meanwhile, and :class:`Prefetch` opens the next files.
    """
    stamp = datetime.datetime.now(tz=datetime.UTC).timetuple()[:6]
    with (
        Prefetch(sources, open_source, ahead=prefetch) as bodies,
        zipfile.ZipFile(out, mode="w", compression=compression, allowZip64=True) as archive,
    ):
        for source in sources:
            if delay_ms[1] > 0:  # the original service's slowness, with a heartbeat meanwhile
                pause = random.uniform(*delay_ms) / 1000
                deadline = time.monotonic() + pause
                while (left := deadline - time.monotonic()) > 0:
                    time.sleep(min(left, 0.5))
                    on_progress(progress)
            info = zipfile.ZipInfo(source.entry_name, date_time=stamp)
            info.compress_type = compression
            info.file_size = source.size
            info.external_attr = 0o644 << 16
            body = bodies.next_body()
            try:
                with archive.open(info, mode="w") as entry:
                    for chunk in body.iter_chunks(CHUNK):
                        entry.write(chunk)
                        progress.bytes_done += len(chunk)
                        on_progress(progress)
            finally:
                _close(body)
            progress.files_done += 1
            on_progress(progress)
