"""The HTTP routes: each one validates through its models and calls one service."""

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse

from downloadjobs_api import health, schemas
from downloadjobs_api.deps import Jobs, Owner, StorageDep

ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": schemas.ErrorResponse, "description": "Invalid request"},
    413: {"model": schemas.ErrorResponse, "description": "Body too large"},
    415: {"model": schemas.ErrorResponse, "description": "Body is not JSON"},
}
NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"model": schemas.ErrorResponse, "description": "No such job"},
}

router = APIRouter()


@router.post(
    "/v1/download/initiate",
    status_code=status.HTTP_202_ACCEPTED,
    responses=ERRORS,
    tags=["download"],
)
def initiate(
    body: schemas.InitiateRequest, jobs: Jobs, owner: Owner, response: Response
) -> schemas.InitiateResponse:
    """Start preparing a bundle; answers at once with the job id to poll."""
    created = jobs.create(body, owner)
    response.headers["Location"] = f"/v1/download/jobs/{created.jobId}"
    return created


@router.get("/v1/download/status/{job_id}", responses=NOT_FOUND, tags=["download"])
def job_status(job_id: str, jobs: Jobs) -> schemas.JobStatusResponse:
    """Where a job is; carries a fresh download URL once it is completed."""
    return jobs.status(job_id)


@router.get("/v1/download/jobs/{job_id}", responses=NOT_FOUND, tags=["download"])
def job(job_id: str, jobs: Jobs) -> schemas.JobStatusResponse:
    """The same answer as ``/v1/download/status/{job_id}``."""
    return jobs.status(job_id)


CONFLICT: dict[int | str, dict[str, object]] = {
    **NOT_FOUND,
    409: {"model": schemas.ErrorResponse, "description": "Not possible in the job's state"},
}


@router.delete(
    "/v1/download/jobs/{job_id}",
    status_code=status.HTTP_202_ACCEPTED,
    responses=CONFLICT,
    tags=["download"],
)
def cancel(job_id: str, jobs: Jobs) -> schemas.JobStatusResponse:
    """Cancel a queued or running job; it turns ``cancelled`` within seconds."""
    return jobs.cancel(job_id)


@router.post(
    "/v1/download/jobs/{job_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    responses=CONFLICT,
    tags=["download"],
)
def retry(job_id: str, jobs: Jobs) -> schemas.JobStatusResponse:
    """Put a failed job back in the queue as a new attempt."""
    return jobs.retry(job_id)


@router.post("/v1/download/check", responses=ERRORS, tags=["download"])
def check(body: schemas.CheckRequest, storage: StorageDep) -> schemas.CheckResponse:
    """Whether one source file exists."""
    return storage.check(body.file_id)


@router.get(
    "/health",
    responses={503: {"model": schemas.HealthResponse, "description": "A dependency is down"}},
    tags=["ops"],
)
def get_health(jobs: Jobs, storage: StorageDep) -> JSONResponse:
    """Storage and Kubernetes reachability; 503 when either is down."""
    report = health.check(jobs, storage)
    code = 200 if report.status == "healthy" else 503
    return JSONResponse(report.model_dump(), status_code=code)
