"""
What the worker reads of its DownloadJob and writes to its status, as msgspec Structs.

A worker pod never loads pydantic: with the resource's models and pydantic-settings
it took a third of the pod's start (issue 18, ``benchmarks/worker_start.py``), for a
list of ids read and a few status fields written. These Structs declare only what
the worker reads and writes, under the same wire names as
:class:`downloadjobs.model.DownloadJobSpec` and
:class:`~downloadjobs.model.DownloadJobStatus`, with the spec's limits from
:mod:`downloadjobs.contract`; ``tests/unit/test_worker_wire.py`` holds them to those
models, field by field and limit by limit, so the models stay the one definition.
"""

import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from downloadjobs.contract import MAX_FILE_ID, MAX_FILES, MIN_FILE_ID

FileId = Annotated[int, Meta(ge=MIN_FILE_ID, le=MAX_FILE_ID)]


class JobSpec(msgspec.Struct, rename="camel"):
    """The spec, as far as the worker reads it (other fields are ignored)."""

    file_ids: Annotated[list[FileId], Meta(min_length=1, max_length=MAX_FILES)]

    def __post_init__(self) -> None:
        if len(set(self.file_ids)) != len(self.file_ids):
            raise ValueError("file ids must be distinct")


def parse_spec(body: dict[str, Any]) -> JobSpec:
    """The spec of a resource body; ``ValueError`` with msgspec's words when invalid."""
    try:
        return msgspec.convert(body.get("spec") or {}, JobSpec)
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from exc


class BundleResult(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Where the finished bundle is (see :class:`downloadjobs.model.BundleResult`)."""

    bucket: str
    key: str
    size: int
    checksum_crc32: str | None = None
    missing_file_ids: list[int]  # written even when empty
    content_key: str | None = None


class JobError(msgspec.Struct, kw_only=True):
    """Why a job failed: a stable machine reason and a sentence."""

    reason: str
    message: str


class WorkerStatus(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """The status fields the worker writes; unset ones are left out of the patch."""

    progress: int | None = None
    files_done: int | None = None
    files_total: int | None = None
    bytes_done: int | None = None
    bytes_total: int | None = None
    heartbeat_at: datetime.datetime | None = None
    upload_id: str | None = None
    parts_uploaded: int | None = None
    resumed_from_part: int | None = None
    result: BundleResult | None = None
    error: JobError | None = None

    def to_wire(self) -> dict[str, Any]:
        """The status merge patch: camelCase keys, timestamps as RFC 3339 strings."""
        wire: dict[str, Any] = msgspec.to_builtins(self)
        return wire
