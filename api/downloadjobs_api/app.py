"""The FastAPI application: wiring of settings, services, middleware and routes."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from downloadjobs import kube
from downloadjobs.settings import KubeSettings, S3Settings
from downloadjobs_api import cors, docs, errors, frontend, health, logs, openapi, routes
from downloadjobs_api.cache import Watcher
from downloadjobs_api.cors import CORSMiddleware
from downloadjobs_api.identity import AuthenticationMiddleware, Identity
from downloadjobs_api.jobs import JobService
from downloadjobs_api.metrics import Metrics
from downloadjobs_api.middleware import BodyLimitMiddleware, RequestIdMiddleware
from downloadjobs_api.poller import Poller
from downloadjobs_api.ratelimit import RateLimitMiddleware
from downloadjobs_api.settings import ApiSettings
from downloadjobs_api.storage import Storage


def create_app(
    jobs: JobService | None = None,
    storage: Storage | None = None,
    settings: ApiSettings | None = None,
    watch: bool | None = None,
) -> FastAPI:
    """
    Build the app; services default to ones configured from the environment.
    ``watch`` starts the watch that feeds the job cache with the app (by default
    only when the JobService is built here, i.e. talks to a real API server).
    """
    settings = settings or ApiSettings()
    if storage is None:
        storage = Storage(S3Settings.from_environment())
    if jobs is None:
        logs.configure()
        kube.load_config()
        jobs = JobService.from_client(KubeSettings.from_environment().namespace, storage, settings)
        watch = True if watch is None else watch
    watcher = (
        Watcher(jobs.api, jobs.namespace, jobs.cache, settings.watch_timeout_seconds)
        if watch
        else None
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if watcher is not None:
            watcher.start()
        yield
        if watcher is not None:
            watcher.stop()

    app = FastAPI(
        title="DownloadJobs",
        version="0.1.0",
        description=(
            "Long-running bundle downloads: initiate, poll, download from S3. "
            "Polls are answered from an in-memory watch cache; use ETag/If-None-Match "
            "and Retry-After to poll cheaply.\n\n"
            "**Rate limits.** Every answer except those of /health, /ready and /metrics "
            "carries RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset (seconds). "
            "Reads (GET, HEAD: polls, the demo page and its files, the documents) and "
            "writes (POST, DELETE) are counted apart, per client (its owner once "
            "authenticated, its address otherwise) and replica; past the limit the "
            "answer is 429 with Retry-After."
        ),
        lifespan=lifespan,
        # Served by the docs module from a pinned package, never from a CDN; no ReDoc.
        docs_url=None,
        redoc_url=None,
    )
    identity = Identity(settings)
    metrics = Metrics(jobs.cache)
    app.state.jobs = jobs
    app.state.storage = storage
    app.state.storage_probe = health.storage_probe(storage)
    app.state.identity = identity
    app.state.metrics = metrics
    app.state.poller = Poller(
        jobs, identity, settings.max_wait_seconds, settings.max_long_polls_per_owner
    )
    app.state.watcher = watcher
    errors.install(app)
    app.include_router(routes.router)
    frontend.install(app)
    docs.install(app)
    openapi.install(app)
    # Added innermost first: request ids wrap everything, so even a 413 or 429 has one;
    # rate limits count a request before the authentication guard can refuse it (bad
    # credentials count against the address), and the guard runs before any parsing.
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(AuthenticationMiddleware, identity=identity)
    app.add_middleware(
        RateLimitMiddleware,
        identity=identity,
        poll_rate=settings.poll_rate,
        write_rate=settings.initiate_rate,
    )
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, **cors.options(settings))
    app.add_middleware(
        RequestIdMiddleware,
        metrics=metrics,
        hsts_max_age=settings.hsts_max_age,
        csp=settings.content_security_policy,
        access_log=settings.access_log,
    )
    # Outermost: every layer (rate limits, logs) sees the client's address, read from
    # X-Forwarded-For only when the connection comes from a configured proxy (never '*').
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips)
    return app
