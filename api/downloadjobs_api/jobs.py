"""
The DownloadJob store: creating resources on the Kubernetes API, reading them
from the watch cache.

Everything the routes need about jobs goes through :class:`JobService`, so the
routes stay free of Kubernetes details and the tests can swap the store. Reads
come from :class:`~downloadjobs_api.cache.JobCache`; only a job this replica has
not seen yet costs one GET, after which it is cached too.
"""

import collections
import contextlib
import datetime
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import anyio.to_thread
import kubernetes
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from downloadjobs import model, resource
from downloadjobs_api import idempotency, paging, schemas
from downloadjobs_api.cache import JobCache
from downloadjobs_api.presenter import JobConflict, Presenter
from downloadjobs_api.settings import ApiSettings
from downloadjobs_api.storage import Storage

log = logging.getLogger(__name__)
#: Job ids the API server did not know, remembered at most this many at once.
MISSING_CAPACITY = 10_000
#: The User-Agent of the API's requests to the Kubernetes API server.
USER_AGENT = "downloadjobs-api/0.1.0"
#: What the Kubernetes client raises when the API server cannot be reached.
_UNREACHABLE = (urllib3.exceptions.HTTPError, OSError)


class JobNotFound(LookupError):
    """No such job (or not one the caller may see)."""


class TooManyActiveJobs(Exception):
    """The owner has as many queued or processing jobs as allowed (429)."""


class KubernetesUnavailable(Exception):
    """The Kubernetes API cannot be reached: writes must wait (503)."""


@contextlib.contextmanager
def _translated_errors(name: str) -> Iterator[None]:
    """
    The Kubernetes client's failures of a read or patch of job ``name`` as the
    service's: 404 is no such job, 5xx or no answer is Kubernetes unavailable.
    """
    try:
        yield
    except ApiException as exc:
        if exc.status == 404:
            raise JobNotFound(name) from exc
        if exc.status == 0 or exc.status >= 500:
            raise KubernetesUnavailable(str(exc.reason)) from exc
        raise
    except _UNREACHABLE as exc:
        raise KubernetesUnavailable(str(exc)) from exc


class JobService:
    def __init__(
        self,
        api: Any,
        namespace: str,
        storage: Storage,
        cache: JobCache | None = None,
        settings: ApiSettings | None = None,
    ) -> None:
        self._api = api  # kubernetes.client.CustomObjectsApi
        self._namespace = namespace
        self._storage = storage
        self.presenter = Presenter(storage, namespace)
        self.cache = cache if cache is not None else JobCache()
        self.settings = settings or ApiSettings()
        self._secret = self.settings.the_idempotency_secret().encode()
        if not self._secret:
            log.warning(
                "DOWNLOADJOBS_API_IDEMPOTENCY_SECRET is not set: Idempotency-Key replays "
                "hold within this process only"
            )
            self._secret = secrets.token_bytes(32)
        # Job ids the API server did not know -> until when (monotonic) that stands.
        self._missing: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._missing_lock = threading.Lock()

    @classmethod
    def from_client(
        cls, namespace: str, storage: Storage, settings: ApiSettings | None = None
    ) -> "JobService":
        client = kubernetes.client.ApiClient()
        client.user_agent = USER_AGENT  # tells the API's requests apart in audit logs
        api = kubernetes.client.CustomObjectsApi(client)
        return cls(api, namespace, storage, settings=settings)

    @property
    def api(self) -> Any:
        return self._api

    @property
    def namespace(self) -> str:
        return self._namespace

    # -- writes -------------------------------------------------------------------------------

    def create(
        self,
        request: schemas.InitiateRequest,
        owner: str,
        idempotency_key: str | None = None,
        traceparent: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """
        The job for ``request``: a new one (True), or with an ``idempotency_key``
        already used with the same body, the one it created then (False).
        """
        digest = idempotency.request_digest(request)
        if idempotency_key is not None:
            name = idempotency.idempotent_name(self._secret, owner, idempotency_key)
            existing = self.cache.get(name)
            if existing is not None:
                return self._replay(existing, digest), False
        else:
            name = str(uuid.uuid4())
        self._check_active(owner)
        spec = model.DownloadJobSpec(file_ids=request.file_ids, owner=owner)
        annotations = {
            model.ANNOTATION_SUBMITTED_AT: datetime.datetime.now(tz=datetime.UTC).isoformat()
        }
        if idempotency_key is not None:
            annotations[idempotency.ANNOTATION_REQUEST_SHA256] = digest
        if traceparent is not None:
            annotations[model.ANNOTATION_TRACEPARENT] = traceparent
        body = {
            "apiVersion": model.API_VERSION,
            "kind": model.KIND,
            "metadata": {
                "name": name,
                "namespace": self._namespace,
                "labels": {model.LABEL_MANAGED_BY: model.MANAGED_BY},
                "annotations": annotations,
                "finalizers": [model.FINALIZER],
            },
            "spec": spec.to_wire(),
        }
        try:
            with _translated_errors(name):
                created: dict[str, Any] = self._api.create_namespaced_custom_object(
                    model.GROUP, model.VERSION, self._namespace, model.PLURAL, body
                )
        except ApiException as exc:
            if exc.status == 409 and idempotency_key is not None:
                return self._replay(self._fetch(name), digest), False
            raise
        if not isinstance(created, dict) or "metadata" not in created:
            created = body
        self.cache.put(created)  # read-your-writes: the next poll finds it here
        return created, True

    def _replay(self, existing: dict[str, Any], digest: str) -> dict[str, Any]:
        return idempotency.replayed(existing, digest, self.settings.idempotency_window_seconds)

    def _check_active(self, owner: str) -> None:
        limit = self.settings.max_active_jobs_per_owner
        active = sum(
            1
            for body in self.cache.values()
            if resource.owner(body) == owner
            and not resource.is_finished(body)
            # a cancel on its way: the job holds nothing the owner may still want
            and model.ANNOTATION_CANCEL not in resource.annotations(body)
        )
        if active >= limit:
            raise TooManyActiveJobs(
                f"you have {active} queued or processing jobs, the most allowed is {limit}; "
                "wait for one to finish or cancel one"
            )

    def cancel(self, job_id: str, owner: str) -> schemas.JobStatusResponse:
        """Ask the operator to cancel; a finished job cannot be (409)."""
        body = self.lookup(job_id, owner)
        phase = model.parse_status(body).phase
        if phase is not None and phase.terminal:
            raise JobConflict(f"job {job_id} is {phase.value.lower()} already; nothing to cancel")
        return self._request(body, model.ANNOTATION_CANCEL)

    def retry(self, job_id: str, owner: str) -> schemas.JobStatusResponse:
        """Put a failed job (a dead letter) back in the queue; only failed jobs can be (409)."""
        body = self.lookup(job_id, owner)
        phase = model.parse_status(body).phase
        if phase is not model.Phase.FAILED:
            state = (phase or model.Phase.QUEUED).value.lower()
            raise JobConflict(f"job {job_id} is {state}; only failed jobs can be retried")
        return self._request(body, model.ANNOTATION_RETRY)

    def _request(self, body: dict[str, Any], annotation: str) -> schemas.JobStatusResponse:
        """Record a request for the operator as an annotation (what kubectl annotate does)."""
        name = body["metadata"]["name"]
        stamp = datetime.datetime.now(tz=datetime.UTC).isoformat()
        with _translated_errors(name):
            patched: dict[str, Any] = self._api.patch_namespaced_custom_object(
                model.GROUP,
                model.VERSION,
                self._namespace,
                model.PLURAL,
                name,
                {"metadata": {"annotations": {annotation: stamp}}},
            )
        self.cache.put(patched)
        return self.describe(patched)

    # -- reads --------------------------------------------------------------------------------

    def lookup(self, job_id: str, owner: str) -> dict[str, Any]:
        """
        The job from the cache, or (the first time this replica hears of it) the API
        server. An id the API server did not know is remembered as missing for a few
        seconds: a missing job then answers 404 as fast as another owner's job does, so
        the time of a 404 does not tell whether the id exists.
        """
        body = self.cache.get(job_id)
        if body is None:
            if self._known_missing(job_id):
                raise JobNotFound(job_id)
            try:
                body = self._fetch(job_id)
            except JobNotFound:
                self._remember_missing(job_id)
                raise
            self.cache.put(body)
        if resource.owner(body) != owner:
            raise JobNotFound(job_id)  # another owner's job does not exist for this caller
        return body

    async def find(self, job_id: str, owner: str) -> dict[str, Any]:
        """:meth:`lookup` for async routes: a cache hit never leaves the event loop."""
        body = self.cache.get(job_id)
        if body is not None:
            if resource.owner(body) != owner:
                raise JobNotFound(job_id)
            return body
        if self._known_missing(job_id):
            raise JobNotFound(job_id)
        return await anyio.to_thread.run_sync(self.lookup, job_id, owner)

    def _known_missing(self, job_id: str) -> bool:
        until = self._missing.get(job_id)
        return until is not None and time.monotonic() < until

    def _remember_missing(self, job_id: str) -> None:
        seconds = self.settings.negative_cache_seconds
        if seconds <= 0:
            return
        with self._missing_lock:
            self._missing[job_id] = time.monotonic() + seconds
            self._missing.move_to_end(job_id)
            while len(self._missing) > MISSING_CAPACITY:
                self._missing.popitem(last=False)

    def _fetch(self, job_id: str) -> dict[str, Any]:
        with _translated_errors(job_id):
            body: dict[str, Any] = self._api.get_namespaced_custom_object(
                model.GROUP, model.VERSION, self._namespace, model.PLURAL, job_id
            )
        return body

    def list(self, owner: str, limit: int, cursor: str | None) -> schemas.JobList:
        """The owner's jobs, newest first, ``limit`` at a time after ``cursor``."""
        mine = [b for b in self.cache.values() if resource.owner(b) == owner]
        chosen, next_cursor = paging.page(mine, limit, cursor)
        return schemas.JobList(items=[self.describe(b) for b in chosen], nextCursor=next_cursor)

    def describe(self, body: dict[str, Any]) -> schemas.JobStatusResponse:
        return self.presenter.describe(body)

    def download_url(self, body: dict[str, Any]) -> str:
        return self.presenter.download_url(body)
