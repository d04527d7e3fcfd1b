"""
Answering a status poll from the watch cache: ETag and 304, the suggested next
poll (``Retry-After``), the bounded long-poll, and the stale-data warning while
the Kubernetes API is unreachable.
"""

from fastapi import Request, Response

from downloadjobs import model
from downloadjobs_api import polling
from downloadjobs_api.cache import resource_version
from downloadjobs_api.identity import Identity
from downloadjobs_api.jobs import JobNotFound, JobService

#: RFC 9111's warning for an answer that may be out of date (kept for clients
#: that read it; the ``X-Data-Stale`` header says the same plainly).
STALE_WARNING = '110 - "Response is Stale"'
#: The longest long-poll a client may ask for, well inside any proxy's timeout.
MAX_WAIT = 25


class BadPollParameter(ValueError):
    """An invalid waitSeconds (400)."""


class Poller:
    def __init__(self, jobs: JobService, identity: Identity, max_wait: int) -> None:
        self.jobs = jobs
        self.identity = identity
        self.max_wait = max_wait

    async def answer_request(self, job_id: str, request: Request) -> Response:
        """:meth:`answer` with the caller, the ETag and the wait read from ``request``."""
        raw = request.query_params.get("waitSeconds")
        wait = None
        if raw is not None:
            wait = polling.parse_seconds(raw)
            if wait is None or wait > MAX_WAIT:
                raise BadPollParameter(f"waitSeconds: an integer from 0 to {MAX_WAIT}")
        headers = request.headers
        return await self.answer(
            job_id,
            self.identity.owner(headers),
            headers.get("if-none-match"),
            wait,
            headers.get("prefer"),
        )

    async def answer(
        self,
        job_id: str,
        owner: str,
        if_none_match: str | None,
        wait_seconds: int | None,
        prefer: str | None = None,
    ) -> Response:
        """The job's state (200), or 304 while the client's ETag is current."""
        body = await self.jobs.find(job_id, owner)
        asked = wait_seconds if wait_seconds is not None else polling.parse_prefer_wait(prefer)
        wait = min(asked or 0, self.max_wait)
        if wait > 0 and not polling.phase_terminal(body):
            tag = polling.etag(body)
            # Wait when the client has this state already (its ETag), or has no ETag at
            # all: "tell me when it changes". Any change of the resource ends the wait.
            if if_none_match is None or polling.matches(if_none_match, tag):
                await self.jobs.cache.wait_change(job_id, resource_version(body), wait)
                found = self.jobs.cache.get(job_id)
                if found is None:
                    raise JobNotFound(job_id)
                body = found
        tag = polling.etag(body)
        headers = {"ETag": tag, "Cache-Control": polling.cache_control(body)}
        if wait:
            headers["Preference-Applied"] = f"wait={wait}"
        if self.jobs.cache.stale:
            headers["Warning"] = STALE_WARNING
            headers["X-Data-Stale"] = "true"
        if polling.matches(if_none_match, tag):
            after = polling.retry_after_of(body, model.utcnow())
            if after is not None:
                headers["Retry-After"] = str(after)
            return Response(status_code=304, headers=headers)
        view = self.jobs.describe(body)
        phase = model.Phase(view.status.capitalize())
        after = polling.retry_after(phase, view.queuePosition, view.etaSeconds)
        if after is not None:
            headers["Retry-After"] = str(after)
        return Response(view.model_dump_json(), media_type="application/json", headers=headers)
