"""
A write-only file object that streams into an S3 multipart upload.

Nothing is visible at the key until :meth:`MultipartWriter.complete`; any
failure aborts the upload, so a reader never sees a half-written bundle.
Memory is one part buffer, whatever the size of the whole.
"""

import hashlib
import logging
from typing import Any

log = logging.getLogger(__name__)


class MultipartWriter:
    def __init__(self, client: Any, bucket: str, key: str, part_size: int) -> None:
        self._client = client
        self.bucket = bucket
        self.key = key
        self._part_size = part_size
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._position = 0
        self._sha256 = hashlib.sha256()
        self._upload_id: str | None = None

    def __enter__(self) -> "MultipartWriter":
        created = self._client.create_multipart_upload(
            Bucket=self.bucket, Key=self.key, ContentType="application/zip"
        )
        self._upload_id = created["UploadId"]
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            try:
                self.abort()
            except Exception:  # the original error matters more; S3 expires the parts
                log.warning("could not abort upload %s of %s", self._upload_id, self.key)

    # The file-object protocol zipfile needs: write, tell, flush (and no seek).
    def write(self, data: bytes | bytearray | memoryview) -> int:
        size = len(data)
        self._sha256.update(data)
        self._buffer += data
        self._position += size
        while len(self._buffer) >= self._part_size:
            chunk = bytes(self._buffer[: self._part_size])
            del self._buffer[: self._part_size]
            self._upload_part(chunk)
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

    def _upload_part(self, chunk: bytes) -> None:
        number = len(self._parts) + 1
        answer = self._client.upload_part(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=chunk,
        )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def complete(self) -> None:
        """Upload what is left and make the object visible, all at once."""
        if self._buffer or not self._parts:
            self._upload_part(bytes(self._buffer))
            self._buffer.clear()
        self._client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )

    def abort(self) -> None:
        if self._upload_id is not None:
            self._client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self._upload_id
            )
            self._upload_id = None
