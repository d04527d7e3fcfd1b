"""The HTTP routes: each one validates through its models and calls one service."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse

from downloadjobs_api import health, schemas
from downloadjobs_api import responses as r
from downloadjobs_api.deps import (
    AUTHENTICATED,
    NO_STORE_ANSWER,
    Idempotency,
    Jobs,
    MetricsDep,
    Owner,
    StorageDep,
    StorageProbe,
)
from downloadjobs_api.deps import Traceparent as TraceparentDep
from downloadjobs_api.poller import Poller
from downloadjobs_api.polling import NO_STORE
from downloadjobs_api.settings import LONG_POLL_CAP

#: A job id is the DownloadJob's name: a DNS subdomain (UUIDs for the API's own).
JOB_ID_PATTERN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="The job's id.")]
router = APIRouter()

#: OpenAPI links from a created job to what can be done with it (stateful test tools follow them).
JOB_LINKS = {
    name: {"operationId": operation, "parameters": {"job_id": "$response.body#/jobId"}}
    for name, operation in [
        ("GetJob", "getJob"),
        ("GetJobStatus", "getJobStatus"),
        ("DownloadFile", "downloadFile"),
        ("CancelJob", "cancelJob"),
        ("RetryJob", "retryJob"),
    ]
}


@router.post(
    "/v1/download/initiate",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.InitiateResponse,
    responses={
        **r.WRITE,
        200: {
            "model": schemas.InitiateResponse,
            "description": "The job created earlier with this Idempotency-Key and body",
            "headers": {**r.COMMON, "Location": r._header("The job's URL.")},
        },
        202: {
            **r.ok(
                "Accepted; poll Location", {**r.COMMON, "Location": r._header("The job's URL.")}
            ),
            "links": JOB_LINKS,
        },
        422: r.error("The Idempotency-Key was used with another body, or has expired"),
        429: r.error("Too many requests, or too many active jobs", r.RETRY_AFTER),
        503: r.error("Kubernetes is unreachable; retry later", r.RETRY_AFTER),
    },
    operation_id="initiate",
    tags=["download"],
)
def initiate(
    body: schemas.InitiateRequest,
    jobs: Jobs,
    owner: Owner,
    idempotency_key: Idempotency,
    traceparent: TraceparentDep,
) -> JSONResponse:
    """
    Start preparing a bundle; answers at once with the job id to poll (202).
    With an ``Idempotency-Key`` already used for the same body, answers 200
    with the original job instead of creating another.
    """
    job, created = jobs.create(body, owner, idempotency_key, traceparent)
    view = jobs.describe(job)
    location = f"/v1/download/jobs/{view.jobId}"
    answer = schemas.InitiateResponse(
        jobId=view.jobId, status=view.status, totalFileIds=view.totalFileIds, statusUrl=location
    )
    return JSONResponse(
        answer.model_dump(mode="json"),
        status_code=202 if created else 200,
        headers={"Location": location},
    )


POLL_RESPONSES: r.Responses = {
    **r.READ,
    200: r.ok("The job's state", r.POLL_HEADERS),
    304: {
        "description": "Unchanged since the ETag sent in If-None-Match",
        "headers": r.POLL_HEADERS,
    },
}
#: The poll's optional parameters, documented here and read by the Poller from the request:
#: polls are the hot path, and FastAPI's per-parameter machinery costs more than the poll.
POLL_PARAMETERS: dict[str, Any] = {
    "parameters": [
        {
            "name": "waitSeconds",
            "in": "query",
            "required": False,
            "description": "Long-poll: answer as soon as the job changes, or after this many s.",
            "schema": {"type": "integer", "minimum": 0, "maximum": LONG_POLL_CAP},
        },
        {
            "name": "If-None-Match",
            "in": "header",
            "required": False,
            "description": "An ETag of an earlier answer: 304 while the job is unchanged.",
            "schema": {"type": "string"},
        },
        {
            "name": "Prefer",
            "in": "header",
            "required": False,
            "description": f"RFC 7240; `wait=N` is a long-poll (N is capped at {LONG_POLL_CAP}).",
            "schema": {"type": "string"},
        },
    ]
}


#: The two poll routes: the original service's ``/status`` and the resource-style ``/jobs``.
POLL_ROUTE: dict[str, Any] = {
    "response_model": schemas.JobStatusResponse,
    "responses": POLL_RESPONSES,
    "openapi_extra": POLL_PARAMETERS,
    "tags": ["download"],
}


@router.get("/v1/download/jobs/{job_id}", operation_id="getJob", **POLL_ROUTE)
@router.get("/v1/download/status/{job_id}", operation_id="getJobStatus", **POLL_ROUTE)
async def job_status(job_id: JobId, request: Request) -> Response:
    """Where a job is; carries a download URL once it is completed."""
    poller: Poller = request.app.state.poller
    return await poller.answer_request(job_id, request)


@router.get(
    "/v1/download/jobs",
    responses={**r.BASE, 200: r.ok("One page of the caller's jobs")},
    operation_id="listJobs",
    dependencies=NO_STORE_ANSWER,
    tags=["download"],
)
def list_jobs(
    jobs: Jobs,
    owner: Owner,
    limit: Annotated[int, Query(ge=1, le=100, description="Jobs per page.")] = 20,
    cursor: Annotated[
        str | None,
        Query(
            max_length=1024,
            pattern=r"^[A-Za-z0-9_-]+$",
            description="nextCursor of the previous page (opaque; only one this API made).",
        ),
    ] = None,
) -> schemas.JobList:
    """The caller's jobs, newest first."""
    return jobs.list(owner, limit, cursor)


@router.get(
    "/v1/download/jobs/{job_id}/file",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses={
        **r.READ,
        **r.CONFLICT,
        302: {
            "description": "To a freshly presigned URL of the bundle",
            "headers": {**r.COMMON, "Location": r._header("The presigned S3 URL.")},
        },
    },
    operation_id="downloadFile",
    tags=["download"],
)
async def download_file(job_id: JobId, jobs: Jobs, owner: Owner) -> RedirectResponse:
    """A stable link to the bundle: redirects to a new presigned URL each time (409 before)."""
    url = jobs.download_url(await jobs.find(job_id, owner))
    return RedirectResponse(url, status_code=302, headers={"Cache-Control": NO_STORE})


@router.delete(
    "/v1/download/jobs/{job_id}",
    status_code=status.HTTP_202_ACCEPTED,
    responses={**r.READ, **r.CONFLICT, 202: r.ok("Cancellation requested")},
    operation_id="cancelJob",
    dependencies=NO_STORE_ANSWER,
    tags=["download"],
)
def cancel(job_id: JobId, jobs: Jobs, owner: Owner) -> schemas.JobStatusResponse:
    """Cancel a queued or running job; it turns ``cancelled`` within seconds."""
    return jobs.cancel(job_id, owner)


@router.post(
    "/v1/download/jobs/{job_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    responses={**r.READ, **r.CONFLICT, 202: r.ok("Queued again")},
    operation_id="retryJob",
    dependencies=NO_STORE_ANSWER,
    tags=["download"],
)
def retry(job_id: JobId, jobs: Jobs, owner: Owner) -> schemas.JobStatusResponse:
    """Put a failed job back in the queue as a new attempt."""
    return jobs.retry(job_id, owner)


@router.post(
    "/v1/download/check",
    responses={**r.WRITE, 200: r.ok("Whether the file exists")},
    operation_id="checkFile",
    dependencies=AUTHENTICATED,
    tags=["download"],
)
def check(body: schemas.CheckRequest, storage: StorageDep) -> schemas.CheckResponse:
    """Whether one source file exists (to any caller the identity mode accepts)."""
    return storage.check(body.file_id)


@router.get(
    "/health",
    responses={
        200: r.ok("Everything is reachable and the job cache is in sync", r.REQUEST_ID),
        503: {
            "model": schemas.HealthResponse,
            "description": "A dependency is down, or the cache has not synced",
            "headers": r.REQUEST_ID,
        },
    },
    operation_id="health",
    tags=["ops"],
)
def get_health(jobs: Jobs, storage: StorageProbe) -> JSONResponse:
    """Storage (probed at most every few seconds), the watch and the cache's sync; 503 if not ok."""
    report = health.check(jobs, storage)
    code = 200 if report.status == "healthy" else 503
    return JSONResponse(report.model_dump(), status_code=code)


@router.get(
    "/ready",
    responses={
        200: r.ok("The job cache has synced", r.REQUEST_ID),
        503: {
            "model": schemas.HealthResponse,
            "description": "Not synced yet",
            "headers": r.REQUEST_ID,
        },
    },
    operation_id="ready",
    tags=["ops"],
)
def get_ready(jobs: Jobs) -> JSONResponse:
    """Readiness: 200 once the job cache holds the full list (then stays ready while stale)."""
    report = health.ready(jobs)
    code = 200 if report.status == "healthy" else 503
    return JSONResponse(report.model_dump(), status_code=code)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: r.ok("Prometheus text format", r.REQUEST_ID)},
    operation_id="metrics",
    tags=["ops"],
)
def get_metrics(metrics: MetricsDep) -> PlainTextResponse:
    """Prometheus metrics: requests, latency, the job cache."""
    body, content_type = metrics.render()
    return PlainTextResponse(body, media_type=content_type)
