"""FastAPI dependencies: the services a route needs, built once per process."""

from typing import Annotated

from fastapi import Depends, Request

from downloadjobs_api.jobs import JobService
from downloadjobs_api.storage import Storage


def get_jobs(request: Request) -> JobService:
    jobs: JobService = request.app.state.jobs
    return jobs


def get_storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


def get_owner() -> str:
    """Who is asking. Identity is not configured yet: everyone is the same owner."""
    return "anonymous"


Jobs = Annotated[JobService, Depends(get_jobs)]
StorageDep = Annotated[Storage, Depends(get_storage)]
Owner = Annotated[str, Depends(get_owner)]
