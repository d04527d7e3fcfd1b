"""
Checkpoints: what a replacement pod needs to continue a bundle, and whether it may.

At every completed part the worker saves, in a small S3 object beside the
bundle's key, the multipart upload's id, how many parts are complete, the
sources' ETags, and a :class:`Point`: a place at or before the end of those
parts from which the ZIP writer can regenerate every later byte (between two
entries, or within a stored entry between two source chunks). The next pod
checks the checkpoint against the sources and S3's ``ListParts`` (S3's word
wins) with :func:`plan`, a pure function; anything that does not match is a
clean restart, never a bundle made of two different streams.

The records are msgspec Structs, not pydantic models: a worker pod never loads
pydantic (see :mod:`downloadjobs_worker.wire`).
"""

import zipfile
from typing import Any

import msgspec
from botocore.exceptions import ClientError

from downloadjobs_worker.zipstate import Entry, Stamp

VERSION = 1


class Point(msgspec.Struct, frozen=True, kw_only=True):
    """A place in the bundle the writer can restart from."""

    stream: int  # offset in the bundle
    index: int  # the source being written; len(sources): the central directory is next
    offset: int  # bytes of that source already written (0: its header is next)
    entry_crc: int  # their CRC-32
    header_offset: int  # where that entry's local header starts (when offset > 0)
    bundle_crc: int  # CRC-32 of the bundle's first ``stream`` bytes


class SourceState(msgspec.Struct, frozen=True, kw_only=True):
    """A source as the first pod saw it; another ETag means another file."""

    file_id: int
    key: str
    size: int
    etag: str


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    version: int = VERSION
    upload_id: str
    part_size: int
    parts: int  # parts 1..parts are uploaded
    compression: int
    stamp: Stamp  # every entry's timestamp
    sources: list[SourceState]
    missing: list[int]
    point: Point
    entries: list[Entry]  # the entries finished before ``point``


class Part(msgspec.Struct, frozen=True, kw_only=True):
    """An uploaded part, as ``ListParts`` reports it."""

    number: int
    etag: str
    size: int
    crc32: str | None = None


class Restart(msgspec.Struct, frozen=True, kw_only=True):
    """Why the bundle starts again from byte zero."""

    reason: str  # SourceChanged, CheckpointMismatch, UploadExpired
    message: str


def checkpoint_key(bundle_key: str) -> str:
    return f"{bundle_key}.checkpoint"


def plan(
    saved: Checkpoint,
    *,
    sources: list[SourceState],
    missing: list[int],
    listed: list[Part] | None,
    part_size: int,
    compression: int,
) -> Checkpoint | Restart:
    """
    ``saved`` when the bundle can continue from it, else why not.

    ``listed`` is what ``ListParts`` answered for the checkpoint's upload (None:
    no such upload, it was aborted or expired). Parts after the checkpoint's are
    ignored: they are uploaded again, with the same bytes.
    """
    if saved.sources != sources or saved.missing != missing:
        return Restart(reason="SourceChanged", message="a source changed since the checkpoint")
    if saved.version != VERSION or saved.part_size != part_size:
        return Restart(reason="CheckpointMismatch", message="the part size or format changed")
    if saved.compression != compression:
        return Restart(reason="CheckpointMismatch", message="the compression changed")
    if listed is None:
        return Restart(reason="UploadExpired", message="the multipart upload no longer exists")
    by_number = {part.number: part for part in listed}
    for number in range(1, saved.parts + 1):
        part = by_number.get(number)
        if part is None or part.size != part_size:
            return Restart(
                reason="CheckpointMismatch", message=f"part {number} is not in the upload"
            )
    point, end = saved.point, saved.parts * part_size
    midway = point.offset > 0  # within a stored entry, after its header
    coherent = (
        saved.parts >= 1
        and 0 <= point.stream <= end
        and len(saved.entries) == point.index <= len(sources)
        and point.offset >= 0
        and (
            not midway
            or (
                point.index < len(sources)
                and point.offset < sources[point.index].size
                and point.header_offset < point.stream
                and compression == zipfile.ZIP_STORED
            )
        )
    )
    if not coherent:
        return Restart(reason="CheckpointMismatch", message="the checkpoint contradicts itself")
    return saved


def load(client: Any, bucket: str, key: str) -> Checkpoint | Restart | None:
    """The saved checkpoint; None when there is none; a Restart when it is unreadable."""
    try:
        raw = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    try:
        return msgspec.json.decode(raw, type=Checkpoint)
    except msgspec.DecodeError as exc:  # not JSON, or not a checkpoint (ValidationError)
        return Restart(reason="CheckpointMismatch", message=f"unreadable checkpoint: {exc}")


def save(client: Any, bucket: str, key: str, checkpoint: Checkpoint) -> None:
    body = msgspec.json.encode(checkpoint)
    client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")


def list_parts(client: Any, bucket: str, key: str, upload_id: str) -> list[Part] | None:
    """Every part S3 holds of the upload; None when the upload is gone."""
    parts: list[Part] = []
    marker = 0
    while True:
        try:
            answer = client.list_parts(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchUpload", "404"):
                return None
            raise
        for part in answer.get("Parts", []):
            parts.append(
                Part(
                    number=part["PartNumber"],
                    etag=part["ETag"],
                    size=part["Size"],
                    crc32=part.get("ChecksumCRC32"),
                )
            )
        if not answer.get("IsTruncated"):
            return parts
        marker = int(answer["NextPartNumberMarker"])
