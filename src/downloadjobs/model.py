"""
The DownloadJob resource: the one definition every other part derives from.

The CRD's OpenAPI schema (:mod:`downloadjobs.crd`), the API's validation and
responses and the operator's status mapping read these models, so a field or a
limit is changed here and nowhere else. The worker, which must start without
pydantic, declares what it reads and writes as msgspec Structs
(:mod:`downloadjobs_worker.wire`) that a unit test holds to these models.
Field names are the resource's camelCase names; Python code uses snake_case.
"""

import datetime
import enum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

from downloadjobs.contract import BUNDLE_FORMAT as BUNDLE_FORMAT
from downloadjobs.contract import EXIT_PERMANENT as EXIT_PERMANENT
from downloadjobs.contract import GROUP as GROUP
from downloadjobs.contract import MAX_FILE_ID as MAX_FILE_ID
from downloadjobs.contract import MAX_FILES as MAX_FILES
from downloadjobs.contract import MIN_FILE_ID as MIN_FILE_ID
from downloadjobs.contract import PLURAL as PLURAL
from downloadjobs.contract import VERSION as VERSION
from downloadjobs.contract import content_key as content_key
from downloadjobs.contract import utcnow as utcnow

API_VERSION = f"{GROUP}/{VERSION}"
KIND = "DownloadJob"
SINGULAR = "downloadjob"
SHORT_NAMES = ["dj"]

#: The owner of jobs made without an identity (``auth.mode: none``, or by kubectl);
#: reserved in the other modes.
ANONYMOUS = "anonymous"
#: The longest owner name (a DNS subdomain's length, as Kubernetes user names go).
MAX_OWNER_LENGTH = 253

#: Labels the operator and the API put on what they create.
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "downloadjobs"
LABEL_JOB_NAME = f"{GROUP}/job-name"
#: The content key of a completed job's bundle: how the operator finds one to reuse.
LABEL_CONTENT_KEY = f"{GROUP}/content-key"
#: Failed for good; ``kubectl get downloadjobs -l downloadjobs.dev/dead-letter=true``.
LABEL_DEAD_LETTER = f"{GROUP}/dead-letter"

#: The operator's finalizer: it removes the bundle before the resource goes. The API
#: creates every DownloadJob with it already, so the operator need not add it first (a
#: write and a round of its watch on the way from initiate to a running worker).
FINALIZER = f"operator.{GROUP}/finalizer"

#: Requests to the operator, as annotations (so ``kubectl annotate`` can make them too).
ANNOTATION_CANCEL = f"{GROUP}/cancel-requested"
ANNOTATION_RETRY = f"{GROUP}/retry-requested"
#: When the API accepted the job, to the microsecond: the queue's FIFO order.
ANNOTATION_SUBMITTED_AT = f"{GROUP}/submitted-at"
#: On a Job: when the admission pass that unsuspended it began, the same for every Job
#: that pass admitted (they are admitted together, whatever order their writes land in).
ANNOTATION_ADMITTED_AT = f"{GROUP}/admitted-at"
#: The job whose bundle this one reuses (set by the operator; a worker cannot write it).
ANNOTATION_BUNDLE_OF = f"{GROUP}/bundle-of"
#: The W3C traceparent of the request that created the job; the worker gets it as TRACEPARENT.
ANNOTATION_TRACEPARENT = f"{GROUP}/traceparent"


class Model(BaseModel):
    """Base of every resource model: camelCase on the wire, nothing unknown accepted."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
    )

    def to_wire(self) -> dict[str, Any]:
        """The resource's JSON form: camelCase keys, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _distinct(values: list[int]) -> list[int]:
    if len(set(values)) != len(values):
        raise ValueError("file ids must be distinct")
    return values


def _json_integer(value: Any) -> Any:
    """
    A number with an integral value is an integer, as JSON Schema and JavaScript see it:
    ``70000.0`` is ``70000``. Anything else goes on to strict validation unchanged, so
    ``1.5``, ``"70000"`` and ``true`` are still refused.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


FileId = Annotated[
    int, Field(ge=MIN_FILE_ID, le=MAX_FILE_ID, strict=True), BeforeValidator(_json_integer)
]
FileIds = Annotated[
    list[FileId],
    Field(min_length=1, max_length=MAX_FILES, json_schema_extra={"x-kubernetes-list-type": "set"}),
    AfterValidator(_distinct),
]


class DownloadJobSpec(Model):
    """What was asked for, and by whom. Immutable once created."""

    file_ids: FileIds = Field(description="Source file ids, in bundle order.")
    owner: str = Field(
        default=ANONYMOUS,
        max_length=MAX_OWNER_LENGTH,
        description="Who may read the job through the API.",
    )


class Phase(enum.StrEnum):
    """Where a job is in its life; the API shows the lower-case value."""

    QUEUED = "Queued"
    PROCESSING = "Processing"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def terminal(self) -> bool:
        return self in (Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED)


class BundleResult(Model):
    """
    Where the finished bundle is. Never a URL: the API presigns one for its answers.

    ``checksumCrc32`` is the whole object's CRC-32 in S3's form (base64 of the
    big-endian value): S3 verified it when the upload completed, and answers it as
    ``x-amz-checksum-crc32`` (``x-amz-checksum-type: FULL_OBJECT``) to a request
    with checksum mode enabled. It replaced ``sha256``, which only workers before
    resumption wrote: a pod that continues another's upload cannot know a SHA-256.
    """

    bucket: str
    key: str
    size: int = Field(ge=0)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    checksum_crc32: str | None = Field(default=None, pattern=r"^[A-Za-z0-9+/]{6}==$")
    missing_file_ids: list[int] = Field(default_factory=list)
    content_key: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{40}$",
        description="What the bundle holds: file ids, their sources' ETags, compression, format.",
    )
    reused: bool | None = Field(
        default=None, description="True when this job reused another job's bundle."
    )


class JobError(Model):
    """Why a job failed, for people: a stable machine reason and a sentence."""

    reason: str
    message: str


class Condition(Model):
    """A Kubernetes-style condition (``kubectl describe`` shows them)."""

    type: str
    status: str = Field(pattern=r"^(True|False|Unknown)$")
    reason: str | None = None
    message: str | None = None
    last_transition_time: datetime.datetime | None = None


class DownloadJobStatus(Model):
    """
    What has happened so far. Written by the operator (phase, Job, conditions)
    and by the worker (progress, result); every field must be declared here,
    since the API server prunes what the CRD schema does not declare.
    """

    phase: Phase | None = None
    progress: int | None = Field(default=None, ge=0, le=100)
    files_done: int | None = Field(default=None, ge=0)
    files_total: int | None = Field(default=None, ge=0)
    bytes_done: int | None = Field(default=None, ge=0)
    bytes_total: int | None = Field(default=None, ge=0)
    attempts: int | None = Field(default=None, ge=0)
    replays: int | None = Field(default=None, ge=0, description="Times a dead letter was retried.")
    job_name: str | None = None
    queue_position: int | None = Field(default=None, ge=0)
    started_at: datetime.datetime | None = None
    completed_at: datetime.datetime | None = None
    heartbeat_at: datetime.datetime | None = None
    upload_id: str | None = Field(
        default=None, description="The bundle's multipart upload, while it is being written."
    )
    parts_uploaded: int | None = Field(
        default=None, ge=0, description="Parts of that upload a checkpoint covers."
    )
    resumed_from_part: int | None = Field(
        default=None, ge=0, description="The last pod continued the upload after this part."
    )
    result: BundleResult | None = None
    error: JobError | None = None
    conditions: list[Condition] | None = None


def parse_time(value: Any) -> datetime.datetime | None:
    """A Kubernetes timestamp (``2026-01-01T00:00:00Z``), a datetime, or nothing."""
    if isinstance(value, datetime.datetime):
        return value
    if not value:
        return None
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def parse_status(body: dict[str, Any]) -> DownloadJobStatus:
    """The status of a resource body as read from the API server (lenient to extra fields)."""
    raw = dict(body.get("status") or {})
    known = {field.alias or name for name, field in DownloadJobStatus.model_fields.items()}
    return DownloadJobStatus.model_validate({k: v for k, v in raw.items() if k in known})
