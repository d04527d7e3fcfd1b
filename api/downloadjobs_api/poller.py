"""
Answering a status poll from the watch cache: ETag and 304, the suggested next
poll (``Retry-After``), the bounded long-poll, and the stale-data warning while
the Kubernetes API is unreachable.

The caller is identified before any parameter is read, so a request without
valid credentials is a 401 whatever else it carries. Each owner (each address in
auth mode none) holds at most ``max_long_polls`` long-polls at once per process;
a long-poll beyond that answers at once, as a plain poll would.
"""

import contextlib
from collections.abc import Iterator

from fastapi import Request, Response

from downloadjobs import model, resource
from downloadjobs_api import polling
from downloadjobs_api.cache import resource_version
from downloadjobs_api.identity import Identity, Unauthenticated
from downloadjobs_api.jobs import JobNotFound, JobService
from downloadjobs_api.settings import LONG_POLL_CAP, AuthMode

#: RFC 9111's warning for an answer that may be out of date (kept for clients
#: that read it; the ``X-Data-Stale`` header says the same plainly).
STALE_WARNING = '110 - "Response is Stale"'
MAX_WAIT = LONG_POLL_CAP


class BadPollParameter(ValueError):
    """An invalid waitSeconds (400)."""


class Poller:
    def __init__(
        self, jobs: JobService, identity: Identity, max_wait: int, max_long_polls: int = 10
    ) -> None:
        self.jobs = jobs
        self.identity = identity
        self.max_wait = max_wait
        self.max_long_polls = max_long_polls
        #: Long-polls waiting now, by holder; a holder leaves when its count is back to 0.
        self.waiting: dict[str, int] = {}

    async def answer_request(self, job_id: str, request: Request) -> Response:
        """:meth:`answer` with the caller, the ETag and the wait read from ``request``."""
        headers = request.headers
        owner = self.identity.resolve(request.scope)  # first: a stranger's parameters are unread
        if isinstance(owner, Unauthenticated):
            raise owner
        raw = request.query_params.get("waitSeconds")
        wait = None
        if raw is not None:
            wait = polling.parse_seconds(raw)
            if wait is None or wait > MAX_WAIT:
                raise BadPollParameter(f"waitSeconds: an integer from 0 to {MAX_WAIT}")
        holder = owner
        if self.identity.mode is AuthMode.NONE:
            client = request.client
            holder = f"ip:{client.host if client else 'unknown'}"
        return await self.answer(
            job_id, owner, headers.get("if-none-match"), wait, headers.get("prefer"), holder
        )

    @contextlib.contextmanager
    def _slot(self, holder: str) -> Iterator[bool]:
        """Whether ``holder`` may wait now (under its cap); held until the block ends."""
        count = self.waiting.get(holder, 0)
        if count >= self.max_long_polls:
            yield False
            return
        self.waiting[holder] = count + 1
        try:
            yield True
        finally:
            left = self.waiting[holder] - 1
            if left:
                self.waiting[holder] = left
            else:
                del self.waiting[holder]

    async def answer(
        self,
        job_id: str,
        owner: str,
        if_none_match: str | None,
        wait_seconds: int | None,
        prefer: str | None = None,
        holder: str | None = None,
    ) -> Response:
        """The job's state (200), or 304 while the client's ETag is current."""
        body = await self.jobs.find(job_id, owner)
        asked = wait_seconds if wait_seconds is not None else polling.parse_prefer_wait(prefer)
        wait = min(asked or 0, self.max_wait)
        if wait > 0 and not resource.is_finished(body):
            tag = polling.etag(body)
            # Wait when the client has this state already (its ETag), or has no ETag at
            # all: "tell me when it changes". Any change of the resource ends the wait.
            if if_none_match is None or polling.matches(if_none_match, tag):
                with self._slot(holder or owner) as allowed:
                    if allowed:
                        await self.jobs.cache.wait_change(job_id, resource_version(body), wait)
                    else:
                        wait = 0  # over the cap: answer now, and say no wait was applied
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
