"""
Building the bundle: source objects streamed one after another into a ZIP.

The ZIP is written to an unseekable stream (the multipart upload), so every
entry carries a data descriptor; ZIP64 is switched on per entry from the size
known by the HEAD request, and for the archive when it grows past the limits.
"""

import dataclasses
import datetime
import random
import time
import zipfile
from collections.abc import Callable
from typing import Any, Protocol

from botocore.exceptions import ClientError

CHUNK = 1024 * 1024


class Sink(Protocol):
    """Where the ZIP goes: an unseekable, append-only byte stream."""

    def write(self, data: bytes, /) -> int: ...
    def tell(self) -> int: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


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


def locate(client: Any, bucket: str, keys: dict[int, str]) -> tuple[list[Source], list[int]]:
    """HEAD every source: the ones present (in request order) and the missing ids."""
    present: list[Source] = []
    missing: list[int] = []
    for file_id, key in keys.items():
        try:
            head = client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _not_found(exc):
                missing.append(file_id)
                continue
            raise
        present.append(Source(file_id, key, int(head["ContentLength"])))
    return present, missing


def write_zip(
    out: Sink,
    sources: list[Source],
    open_source: Callable[[Source], Any],
    progress: Progress,
    on_progress: Callable[[Progress], None],
    *,
    compression: int = zipfile.ZIP_STORED,
    delay_ms: tuple[int, int] = (0, 0),
) -> None:
    """Stream each source into ``out`` as one ZIP entry, calling ``on_progress`` as bytes flow."""
    stamp = datetime.datetime.now(tz=datetime.UTC).timetuple()[:6]
    with zipfile.ZipFile(out, mode="w", compression=compression, allowZip64=True) as archive:
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
            body = open_source(source)
            with archive.open(info, mode="w") as entry:
                for chunk in body.iter_chunks(CHUNK):
                    entry.write(chunk)
                    progress.bytes_done += len(chunk)
                    on_progress(progress)
            progress.files_done += 1
            on_progress(progress)
