"""
A write-only file object that streams into an S3 multipart upload.

Nothing is visible at the key until :meth:`MultipartWriter.complete`; any
failure aborts the upload, so a reader never sees a half-written bundle.

Parts go up ``concurrency`` at a time on a thread pool while the next part
fills, so the writer is limited by S3, not by waiting for each PUT in turn.
Memory is fixed: ``concurrency + 1`` part buffers, allocated once and reused,
whatever the size of the bundle. Bytes are copied once, from the caller's chunk
into a part buffer; the HTTP layer reads the buffer through a memoryview.
"""

import concurrent.futures
import hashlib
import logging
import queue
import threading
from typing import Any

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


class MultipartWriter:
    def __init__(
        self, client: Any, bucket: str, key: str, part_size: int, concurrency: int = 1
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
        self._parts: dict[int, str] = {}  # part number -> ETag
        self._pending: set[concurrent.futures.Future[None]] = set()
        self._next_part = 1
        self._position = 0
        self._sha256 = hashlib.sha256()
        self._upload_id: str | None = None
        self._failure: BaseException | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(
            self._concurrency, thread_name_prefix="upload-part"
        )
        self._lock = threading.Lock()

    def __enter__(self) -> "MultipartWriter":
        created = self._client.create_multipart_upload(
            Bucket=self.bucket, Key=self.key, ContentType="application/zip"
        )
        self._upload_id = created["UploadId"]
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is not None:
                self._settle()
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
        self._sha256.update(view)
        self._position += size
        offset = 0
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

    def close(self) -> None:
        """Nothing to release: :meth:`complete` or :meth:`abort` ends the upload."""

    def seekable(self) -> bool:
        return False

    @property
    def size(self) -> int:
        return self._position

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

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
            )
            with self._lock:
                self._parts[number] = answer["ETag"]
        finally:
            self._free.put(buffer)

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
        parts = [{"PartNumber": n, "ETag": self._parts[n]} for n in sorted(self._parts)]
        self._client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": parts},
        )

    def abort(self) -> None:
        if self._upload_id is not None:
            self._client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self._upload_id
            )
            self._upload_id = None
