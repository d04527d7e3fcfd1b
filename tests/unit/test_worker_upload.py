"""The multipart writer: parts go up concurrently, memory is fixed, a failure leaves nothing."""

import base64
import threading
import zlib
from typing import Any

import pytest
from botocore.exceptions import ClientError

from downloadjobs_worker.upload import MultipartWriter, PartBody

PART = 5 * 1024 * 1024


class Recording:
    """A client that passes calls through and checks how many part uploads overlap."""

    def __init__(self, client: Any, barrier: threading.Barrier | None = None) -> None:
        self._client = client
        self._barrier = barrier
        self._lock = threading.Lock()
        self.running = 0
        self.most_running = 0
        self.fail_part: int | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def upload_part(self, **kwargs: Any) -> Any:
        with self._lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            if self._barrier is not None and kwargs["PartNumber"] <= self._barrier.parties:
                self._barrier.wait()  # breaks (and fails the test) unless parts overlap
            if kwargs["PartNumber"] == self.fail_part:
                raise ClientError({"Error": {"Code": "InternalError"}}, "UploadPart")
            return self._client.upload_part(**kwargs)
        finally:
            with self._lock:
                self.running -= 1


def pattern(size: int) -> bytes:
    return (bytes(range(251)) * (size // 251 + 1))[:size]


def test_parts_go_up_concurrently_with_a_fixed_number_of_buffers(s3: Any) -> None:
    client = Recording(s3, threading.Barrier(3, timeout=30))
    data = pattern(6 * PART + 12345)
    with MultipartWriter(client, "out", "b.zip", PART, concurrency=3) as out:
        for start in range(0, len(data), 1024 * 1024 - 3):  # chunks across part boundaries
            out.write(data[start : start + 1024 * 1024 - 3])
        out.complete()
    assert client.most_running == 3
    assert out._buffers <= 3 + 1  # uploading, plus the one filling: memory does not grow
    body = s3.get_object(Bucket="out", Key="b.zip")["Body"].read()
    assert body == data
    assert out.size == len(data)
    assert base64.b64decode(out.crc32) == zlib.crc32(data).to_bytes(4, "big")
    assert s3.head_object(Bucket="out", Key="b.zip")["ETag"].endswith('-7"')  # 7 parts


def test_a_failed_part_leaves_no_object_and_no_upload(s3: Any) -> None:
    client = Recording(s3)
    client.fail_part = 2
    with pytest.raises(ClientError), MultipartWriter(client, "out", "b.zip", PART, 2) as out:
        for _ in range(4):
            out.write(pattern(PART))
        out.complete()
    assert s3.list_objects_v2(Bucket="out").get("KeyCount") == 0
    assert s3.list_multipart_uploads(Bucket="out").get("Uploads", []) == []


def test_a_failure_before_completion_aborts_the_upload(s3: Any) -> None:
    with pytest.raises(RuntimeError), MultipartWriter(s3, "out", "b.zip", PART, 4) as out:
        out.write(pattern(3 * PART))
        raise RuntimeError("the ZIP writer failed")
    assert s3.list_objects_v2(Bucket="out").get("KeyCount") == 0
    assert s3.list_multipart_uploads(Bucket="out").get("Uploads", []) == []


def test_a_small_bundle_is_one_part(s3: Any) -> None:
    with MultipartWriter(s3, "out", "b.zip", PART, 4) as out:
        out.write(b"tiny")
        out.complete()
    assert s3.get_object(Bucket="out", Key="b.zip")["Body"].read() == b"tiny"


def test_part_body_reads_and_rewinds_without_copying() -> None:
    buffer = bytearray(b"0123456789")
    body = PartBody(memoryview(buffer)[:8])
    assert len(body) == 8
    assert bytes(body.read(3)) == b"012"
    assert body.tell() == 3
    assert bytes(body.read()) == b"34567"
    assert bytes(body.read(5)) == b""
    assert body.seek(-2, 2) == 6 and bytes(body.read(10)) == b"67"
    body.seek(0)
    chunk = body.read(2)
    buffer[0:1] = b"X"  # a view, not a copy
    assert bytes(chunk) == b"X1"
