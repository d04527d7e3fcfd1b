"""
Building the bundle: source objects streamed one after another into a ZIP.

The ZIP is written to an unseekable stream (the multipart upload), so every
entry carries a data descriptor; the standard library's ``zipfile`` switches
ZIP64 on per entry from the size known by the HEAD request, and for the archive
when it grows past 4 GiB or 65,535 entries.

While the ZIP writer copies one file, a background thread already downloads
the next bytes (:class:`ReadAhead`, bounded), and the upload sends earlier
parts: downloads, CRC32/SHA-256 and uploads overlap instead of taking turns.
"""

import concurrent.futures
import contextlib
import dataclasses
import datetime
import queue
import random
import threading
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from botocore.exceptions import ClientError

CHUNK = 1024 * 1024


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


class _End:
    """Marks the end of one source in the read-ahead queue."""


@dataclasses.dataclass(frozen=True)
class _Failed:
    error: BaseException


class ReadAhead:
    """
    Downloads the sources in order on a background thread, at most ``limit`` bytes ahead.

    The queue holds whole chunks as botocore hands them over (no re-buffering),
    so memory is bounded by ``limit`` plus the chunk in the consumer's hands.
    A download error is raised in the consumer, at the point it reaches.
    """

    def __init__(
        self,
        sources: Iterable[Source],
        open_source: Callable[[Source], Body],
        *,
        limit: int,
        chunk_size: int = CHUNK,
    ) -> None:
        self._sources = list(sources)
        self._open = open_source
        self._chunk_size = chunk_size
        self._queue: queue.Queue[bytes | _End | _Failed] = queue.Queue(
            maxsize=max(1, limit // chunk_size)
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="read-ahead", daemon=True)

    def __enter__(self) -> "ReadAhead":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        while self._thread.is_alive():  # unblock a producer waiting for room
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)
        self._thread.join()

    def _put(self, item: bytes | _End | _Failed) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for source in self._sources:
                body = self._open(source)
                try:
                    for chunk in body.iter_chunks(self._chunk_size):
                        if not self._put(chunk):
                            return
                finally:
                    close = getattr(body, "close", None)
                    if close is not None:
                        close()
                if not self._put(_End()):
                    return
        except BaseException as exc:
            self._put(_Failed(exc))

    def chunks(self) -> Iterator[bytes]:
        """The bytes of the next source, chunk by chunk."""
        while True:
            item = self._queue.get()
            if isinstance(item, _End):
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item


def write_zip(
    out: Sink,
    sources: list[Source],
    open_source: Callable[[Source], Body],
    progress: Progress,
    on_progress: Callable[[Progress], None],
    *,
    compression: int = zipfile.ZIP_STORED,
    delay_ms: tuple[int, int] = (0, 0),
    read_ahead: int = 8 * CHUNK,
) -> None:
    """
    Stream each source into ``out`` as one ZIP entry, calling ``on_progress`` as bytes flow.

    Each chunk is touched once on this thread: ``zipfile`` folds it into the
    entry's CRC32 (and compresses it when asked), ``out`` into the bundle's
    SHA-256 and its part buffer, both in C.
    """
    stamp = datetime.datetime.now(tz=datetime.UTC).timetuple()[:6]
    with (
        ReadAhead(sources, open_source, limit=read_ahead) as reader,
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
            with archive.open(info, mode="w") as entry:
                for chunk in reader.chunks():
                    entry.write(chunk)
                    progress.bytes_done += len(chunk)
                    on_progress(progress)
            progress.files_done += 1
            on_progress(progress)
