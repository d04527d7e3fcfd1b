"""
FastAPI dependencies: the services a route needs, built once per process.

They are ``async def`` although they do no I/O: FastAPI runs a plain ``def``
dependency in its thread pool, a thread hop per dependency per request.
"""

import re
from typing import Annotated

from fastapi import Depends, Header, Request, Response

from downloadjobs_api.health import CachedProbe
from downloadjobs_api.identity import Identity, Unauthenticated
from downloadjobs_api.jobs import JobService
from downloadjobs_api.metrics import Metrics
from downloadjobs_api.polling import NO_STORE
from downloadjobs_api.storage import Storage

#: W3C Trace Context, version 00 (an invalid one is ignored, as the spec asks).
_TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


async def get_jobs(request: Request) -> JobService:
    jobs: JobService = request.app.state.jobs
    return jobs


async def get_storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


async def get_storage_probe(request: Request) -> CachedProbe:
    probe: CachedProbe = request.app.state.storage_probe
    return probe


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def get_owner(request: Request) -> str:
    """Who is asking, by the configured identity mode (401 when unknown)."""
    identity: Identity = request.app.state.identity
    found = identity.resolve(request.scope)
    if isinstance(found, Unauthenticated):
        raise found
    return found


async def get_idempotency_key(
    idempotency_key: Annotated[
        str | None,
        Header(
            pattern=r"^[\x21-\x7e]{1,255}$",
            description="Makes initiate safe to retry: the same key and body give the same job.",
        ),
    ] = None,
) -> str | None:
    return idempotency_key


async def get_traceparent(
    traceparent: Annotated[
        str | None,
        Header(description="W3C Trace Context; recorded on the job, given to the worker."),
    ] = None,
) -> str | None:
    if traceparent is None:
        return None
    value = traceparent.strip().lower()
    if not _TRACEPARENT.match(value) or value.split("-")[1] == "0" * 32:
        return None
    return value


async def no_store(response: Response) -> None:
    """For routes whose answer may carry a presigned URL: no cache may keep it."""
    response.headers["Cache-Control"] = NO_STORE


Jobs = Annotated[JobService, Depends(get_jobs)]
StorageDep = Annotated[Storage, Depends(get_storage)]
StorageProbe = Annotated[CachedProbe, Depends(get_storage_probe)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
Owner = Annotated[str, Depends(get_owner)]
Idempotency = Annotated[str | None, Depends(get_idempotency_key)]
Traceparent = Annotated[str | None, Depends(get_traceparent)]
#: A route's ``dependencies=`` for answers that may carry a presigned URL.
NO_STORE_ANSWER = [Depends(no_store)]
#: A route's ``dependencies=`` when it answers anyone identified but needs no owner.
AUTHENTICATED = [Depends(get_owner)]
