"""The FastAPI application: wiring of settings, services, middleware and routes."""

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from downloadjobs import kube
from downloadjobs.settings import KubeSettings, S3Settings
from downloadjobs_api import errors, frontend, routes
from downloadjobs_api.jobs import JobService
from downloadjobs_api.middleware import BodyLimitMiddleware, RequestIdMiddleware
from downloadjobs_api.settings import ApiSettings
from downloadjobs_api.storage import Storage


def create_app(
    jobs: JobService | None = None,
    storage: Storage | None = None,
    settings: ApiSettings | None = None,
) -> FastAPI:
    """Build the app; services default to ones configured from the environment."""
    settings = settings or ApiSettings()
    if storage is None:
        storage = Storage(S3Settings())
    if jobs is None:
        kube.load_config()
        jobs = JobService.from_client(KubeSettings().namespace, storage)

    app = FastAPI(
        title="DownloadJobs",
        version="0.1.0",
        description="Long-running bundle downloads: initiate, poll, download from S3.",
    )
    app.state.jobs = jobs
    app.state.storage = storage
    errors.install(app)
    app.include_router(routes.router)
    frontend.install(app)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Location"],
        )
    app.add_middleware(RequestIdMiddleware)
    return app
