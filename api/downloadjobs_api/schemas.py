"""The HTTP contract: request and response bodies, as the original clients know them."""

import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from downloadjobs.model import FileId, FileIds

JobState = Literal["queued", "processing", "completed", "failed", "cancelled"]


class InitiateRequest(BaseModel):
    """Ask for a bundle of files."""

    model_config = ConfigDict(extra="forbid")

    file_ids: FileIds = Field(examples=[[70000, 70007, 70014]])


class InitiateResponse(BaseModel):
    """The accepted job (202), or with a reused Idempotency-Key the original one (200)."""

    jobId: str
    status: JobState = "queued"
    totalFileIds: int
    statusUrl: str = Field(description="Where to poll (also the Location header).")


class CheckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file_id: FileId = Field(examples=[70000])


class CheckResponse(BaseModel):
    file_id: int
    available: bool
    s3Key: str
    size: int | None = None


class DownloadResult(BaseModel):
    """
    The finished bundle. ``downloadUrl`` is presigned by the API: polls reuse one
    while three quarters of its lifetime are left; ``/file`` signs a new one each time.
    """

    downloadUrl: str
    expiresAt: datetime.datetime
    size: int
    sha256: str | None = None  # bundles of workers before checksumCrc32 only
    checksumCrc32: str | None = None  # S3's full-object CRC-32 (base64)
    missingFileIds: list[int]


class JobErrorBody(BaseModel):
    reason: str
    message: str


class JobStatusResponse(BaseModel):
    jobId: str
    status: JobState
    progress: int = Field(ge=0, le=100)
    totalFileIds: int
    filesDone: int = 0
    filesTotal: int | None = None
    bytesDone: int = 0
    bytesTotal: int | None = None
    attempts: int = 0
    queuePosition: int | None = None
    etaSeconds: int | None = Field(
        default=None, ge=0, description="Estimated seconds left (processing jobs)."
    )
    createdAt: datetime.datetime | None = None
    startedAt: datetime.datetime | None = None
    completedAt: datetime.datetime | None = None
    result: DownloadResult | None = None
    error: JobErrorBody | None = None


class JobList(BaseModel):
    """One page of the caller's jobs, newest first."""

    items: list[JobStatusResponse]
    nextCursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; absent on the last."
    )


class HealthResponse(BaseModel):
    status: Literal["healthy", "unhealthy"]
    checks: dict[str, Literal["ok", "error"]]


class IndexLinks(BaseModel):
    """Where to go from the root."""

    docs: str = Field(description="The interactive API documentation (Swagger UI).")
    openapi: str = Field(description="The OpenAPI document.")
    health: str = Field(description="The health report.")
    initiate: str = Field(description="POST file ids here to start a job.")
    jobs: str = Field(
        description=(
            "The caller's jobs, newest first; each job's own URL (poll it, cancel it) is "
            "the statusUrl of its initiate answer."
        )
    )


class ServiceIndex(BaseModel):
    """What this service is: the root's answer to anything but a browser."""

    name: str
    version: str
    description: str
    links: IndexLinks


class ErrorResponse(BaseModel):
    """The one envelope of every 4xx and 5xx answer."""

    error: str
    message: str
    requestId: str
