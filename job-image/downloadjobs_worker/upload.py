"""
A write-only file object that streams into an S3 multipart upload.

Nothing is visible at the key until :meth:`MultipartWriter.complete`, so a
reader never sees a half-written bundle. A failure aborts the upload unless a
checkpoint was saved: then the parts stay for the next pod to continue
(``resume``), and the operator aborts what no pod finishes.

At every part boundary the writer remembers the last place the ZIP writer
marked before it (:meth:`mark`), and once parts 1..n are all uploaded it hands
part n's place to ``on_checkpoint``. It keeps the bundle's CRC-32 as it goes,
for S3 to verify as a full-object checksum: unlike a SHA-256, whose state Python
cannot save, a CRC-32 continues in the next pod (and costs a third as much).
A resumed writer starts at the checkpoint's place and drops the bytes up to the
end of the uploaded parts, which the ZIP writer regenerates only to get back in
step.

Parts go up ``concurrency`` at a time on a thread pool while the next part
fills, so the writer is limited by S3, not by waiting for each PUT in turn.
Memory is fixed: ``concurrency + 1`` part buffers, allocated once and reused,
whatever the size of the bundle. Bytes are copied once, from the caller's chunk
into a part buffer; the HTTP layer reads the buffer through a memoryview.
"""

import base64
import concurrent.futures
import logging
import queue
import threading
import zlib
from collections.abc import Callable
from typing import Any

from downloadjobs_worker.checkpoint import Part, Point

log = logging.getLogger(__name__)


class PartBody:
    """
    A seekable, read-only file over one part buffer, without copying it.

    botocore reads a body up to three times (request checksum, SigV4 payload
    hash, the send itself) and seeks back in between and on retries; every
    read returns a slice of the same memory.
    """

    def __init__(self, view: memoryview) -> None:
        self._view = view
        self._position = 0

    def __len__(self) -> int:
        return len(self._view)

    def read(self, size: int | None = -1, /) -> memoryview:
        end = len(self._view) if size is None or size < 0 else self._position + size
        chunk = self._view[self._position : end]
        self._position += len(chunk)
        return chunk

    def seek(self, offset: int, whence: int = 0, /) -> int:
        base = (0, self._position, len(self._view))[whence]
        self._position = min(max(0, base + offset), len(self._view))
        return self._position

    def tell(self) -> int:
        return self._position

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True


def _no_checkpoint(upload_id: str, parts: int, point: Point) -> None:
    pass


class MultipartWriter:
    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        part_size: int,
        concurrency: int = 1,
        *,
        on_checkpoint: Callable[[str, int, Point], None] = _no_checkpoint,
        resume: tuple[str, list[Part], Point] | None = None,
    ) -> None:
        self._client = client
        self.bucket = bucket
        self.key = key
        self._part_size = part_size
        self._concurrency = max(1, concurrency)
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._buffers = 0
        self._current: bytearray | None = None
        self._fill = 0
        self._parts: dict[int, Part] = {}
        self._pending: set[concurrent.futures.Future[None]] = set()
        self._next_part = 1
        self._position = 0
        self._crc = 0
        self._upload_id: str | None = None
        self._failure: BaseException | None = None
        self._on_checkpoint = on_checkpoint
        self._mark: Point | None = None
        self._marks: dict[int, Point | None] = {}  # part number -> its place
        self._uploaded = 0  # parts 1..this are all up
        self._saved = 0  # the last checkpoint's part count
        self._save_lock = threading.Lock()
        self._drop_until = 0
        if resume is not None:
            self._upload_id, parts, point = resume
            self._parts = {part.number: part for part in parts}  # 1..n, as plan() checked
            self._uploaded = self._saved = len(self._parts)
            self._next_part = self._uploaded + 1
            self._position, self._crc = point.stream, point.bundle_crc
            self._drop_until = self._uploaded * part_size
        self._pool = concurrent.futures.ThreadPoolExecutor(
            self._concurrency, thread_name_prefix="upload-part"
        )
        self._lock = threading.Lock()

    def __enter__(self) -> "MultipartWriter":
        if self._upload_id is None:
            created = self._client.create_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                ContentType="application/zip",
                ChecksumAlgorithm="CRC32",
                ChecksumType="FULL_OBJECT",
            )
            self._upload_id = created["UploadId"]
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is not None:
                self._settle()
                if self._saved:
                    log.info("keeping upload %s: %d parts to resume", self._upload_id, self._saved)
                    return
                try:
                    self.abort()
                except Exception:  # the original error matters more; S3 expires the parts
                    log.warning("could not abort upload %s of %s", self._upload_id, self.key)
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    # The file-object protocol zipfile needs: write, tell, flush (and no seek).
    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        size = len(view)
        self._crc = zlib.crc32(view, self._crc)
        # a resumed writer regenerates bytes already uploaded: they only move the place on
        offset = min(size, max(0, self._drop_until - self._position))
        self._position += size
        while offset < size:
            if self._current is None:
                self._current = self._take_buffer()
                self._fill = 0
            take = min(self._part_size - self._fill, size - offset)
            self._current[self._fill : self._fill + take] = view[offset : offset + take]
            self._fill += take
            offset += take
            if self._fill == self._part_size:
                self._submit()
        return size

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def mark(self, index: int, offset: int, entry_crc: int, header_offset: int) -> None:
        """The ZIP writer can restart from here (see :class:`~checkpoint.Point`)."""
        self._mark = Point(
            stream=self._position,
            index=index,
            offset=offset,
            entry_crc=entry_crc,
            header_offset=header_offset,
            bundle_crc=self._crc,
        )

    def close(self) -> None:
        """Nothing to release: :meth:`complete` or :meth:`abort` ends the upload."""

    def seekable(self) -> bool:
        return False

    @property
    def size(self) -> int:
        return self._position

    @property
    def crc32(self) -> str:
        """The bundle's CRC-32 as S3 writes a full-object checksum: base64, big-endian."""
        return base64.b64encode(self._crc.to_bytes(4, "big")).decode()

    @property
    def upload_id(self) -> str:
        assert self._upload_id is not None
        return self._upload_id

    # -- parts ---------------------------------------------------------------------------------

    def _take_buffer(self) -> bytearray:
        """A free part buffer; waits for an upload to finish when all of them are in use."""
        while True:
            self._reap()
            try:
                return self._free.get_nowait()
            except queue.Empty:
                pass
            if self._buffers <= self._concurrency:
                self._buffers += 1
                return bytearray(self._part_size)
            concurrent.futures.wait(self._pending, return_when=concurrent.futures.FIRST_COMPLETED)

    def _reap(self) -> None:
        """Forget finished uploads; a failed part fails the bundle, for good."""
        done = {future for future in self._pending if future.done()}
        self._pending -= done
        for future in done:
            if self._failure is None:
                self._failure = future.exception()
        if self._failure is not None:
            raise self._failure

    def _submit(self) -> None:
        buffer, length = self._current, self._fill
        assert buffer is not None
        self._current, self._fill = None, 0
        number = self._next_part
        self._next_part += 1
        self._marks[number] = self._mark  # at or before this part's end
        self._pending.add(self._pool.submit(self._upload_part, number, buffer, length))

    def _upload_part(self, number: int, buffer: bytearray, length: int) -> None:
        try:
            answer = self._client.upload_part(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=PartBody(memoryview(buffer)[:length]),
                ContentLength=length,
                ChecksumAlgorithm="CRC32",
            )
        finally:
            self._free.put(buffer)
        part = Part(
            number=number, etag=answer["ETag"], size=length, crc32=answer.get("ChecksumCRC32")
        )
        with self._lock:
            self._parts[number] = part
            uploaded = self._uploaded
            while uploaded + 1 in self._parts:
                uploaded += 1
            point = self._marks.get(uploaded)
            for done in range(self._uploaded + 1, uploaded + 1):
                self._marks.pop(done, None)
            self._uploaded = uploaded
        if point is not None:
            self._checkpoint(uploaded, point)

    def _checkpoint(self, parts: int, point: Point) -> None:
        """Best effort: a checkpoint missed only means more to redo after a crash."""
        with self._save_lock:
            if parts <= self._saved:
                return  # a later one was saved by a faster thread
            try:
                self._on_checkpoint(self.upload_id, parts, point)
            except Exception as exc:
                log.warning("checkpoint after part %d not saved: %s", parts, exc)
                return
            self._saved = parts

    def _settle(self) -> None:
        """Wait for every part in flight, whatever its outcome."""
        concurrent.futures.wait(self._pending)

    def complete(self) -> None:
        """Upload what is left and make the object visible, all at once."""
        if self._current is not None or self._next_part == 1:
            if self._current is None:
                self._current = self._take_buffer()
            self._submit()
        self._settle()
        self._reap()
        log.info("%d parts uploaded; completing the upload", len(self._parts))
        parts = [_listed(self._parts[n]) for n in sorted(self._parts)]
        self._client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": parts},
            ChecksumCRC32=self.crc32,
            ChecksumType="FULL_OBJECT",
        )

    def abort(self) -> None:
        if self._upload_id is not None:
            self._client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self._upload_id
            )
            self._upload_id = None


def _listed(part: Part) -> dict[str, Any]:
    entry: dict[str, Any] = {"PartNumber": part.number, "ETag": part.etag}
    if part.crc32:
        entry["ChecksumCRC32"] = part.crc32
    return entry
