"""
The DownloadJob store: creating resources on the Kubernetes API, reading them
from the watch cache.

Everything the routes need about jobs goes through :class:`JobService`, so the
routes stay free of Kubernetes details and the tests can swap the store. Reads
come from :class:`~downloadjobs_api.cache.JobCache`; only a job this replica has
not seen yet costs one GET, after which it is cached too.
"""

import base64
import binascii
import collections
import contextlib
import datetime
import hashlib
import hmac
import json
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
from downloadjobs_api import polling, schemas
from downloadjobs_api.cache import JobCache
from downloadjobs_api.settings import ApiSettings
from downloadjobs_api.storage import Storage

#: The SHA-256 of an initiate request made with an Idempotency-Key, to tell a
#: replay (same body) from a misuse of the key (another body).
ANNOTATION_REQUEST_SHA256 = f"{model.GROUP}/request-sha256"
log = logging.getLogger(__name__)
#: Job ids the API server did not know, remembered at most this many at once.
MISSING_CAPACITY = 10_000
#: The User-Agent of the API's requests to the Kubernetes API server.
USER_AGENT = "downloadjobs-api/0.1.0"
#: What the Kubernetes client raises when the API server cannot be reached.
_UNREACHABLE = (urllib3.exceptions.HTTPError, OSError)


class JobNotFound(LookupError):
    """No such job (or not one the caller may see)."""


class JobConflict(Exception):
    """The job is not in a state where the request makes sense (409)."""


class JobNotReady(JobConflict):
    """The job has no bundle to download yet (409)."""


class IdempotencyMismatch(ValueError):
    """The Idempotency-Key was used with another body, or is too old to reuse (422)."""


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


def owner_of(body: dict[str, Any]) -> str:
    return str(body.get("spec", {}).get("owner") or "anonymous")


def phase_of(body: dict[str, Any]) -> model.Phase:
    raw = (body.get("status") or {}).get("phase")
    try:
        return model.Phase(raw) if raw else model.Phase.QUEUED
    except ValueError:
        return model.Phase.QUEUED


def _origin(body: dict[str, Any]) -> str | None:
    """The job whose bundle this one shares (the operator's annotation), if any."""
    return resource.annotations(body).get(model.ANNOTATION_BUNDLE_OF)


def submitted_at(body: dict[str, Any]) -> str:
    meta = body["metadata"]
    return str(
        (meta.get("annotations") or {}).get(model.ANNOTATION_SUBMITTED_AT)
        or meta.get("creationTimestamp")
        or ""
    )


def request_digest(request: schemas.InitiateRequest) -> str:
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotent_name(secret: bytes, owner: str, key: str) -> str:
    """
    The job name for (owner, key): the same pair always names the same resource,
    so the API server's AlreadyExists makes concurrent duplicates one job. A keyed
    HMAC, so that nobody without ``secret`` can tell which name a pair gets (a
    public derivation would let anyone predict, and probe for, another's jobs).
    Shaped as a UUID (version 4: the digest is indistinguishable from random).
    """
    digest = hmac.new(secret, f"{owner}\n{key}".encode(), hashlib.sha256).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _encode_cursor(body: dict[str, Any]) -> str:
    raw = json.dumps([submitted_at(body), body["metadata"]["name"]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, name = json.loads(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidCursor("the cursor is not one this API returned") from exc
    if not isinstance(stamp, str) or not isinstance(name, str):
        raise InvalidCursor("the cursor is not one this API returned")
    return stamp, name


class InvalidCursor(ValueError):
    """A list cursor this API did not make (400)."""


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
        digest = request_digest(request)
        if idempotency_key is not None:
            name = idempotent_name(self._secret, owner, idempotency_key)
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
            annotations[ANNOTATION_REQUEST_SHA256] = digest
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
            },
            "spec": spec.to_wire(),
        }
        try:
            created: dict[str, Any] = self._api.create_namespaced_custom_object(
                model.GROUP, model.VERSION, self._namespace, model.PLURAL, body
            )
        except ApiException as exc:
            if exc.status == 409 and idempotency_key is not None:
                return self._replay(self._fetch(name), digest), False
            if exc.status == 0 or exc.status >= 500:
                raise KubernetesUnavailable(str(exc.reason)) from exc
            raise
        except _UNREACHABLE as exc:
            raise KubernetesUnavailable(str(exc)) from exc
        if not isinstance(created, dict) or "metadata" not in created:
            created = body
        self.cache.put(created)  # read-your-writes: the next poll finds it here
        return created, True

    def _replay(self, existing: dict[str, Any], digest: str) -> dict[str, Any]:
        annotations = existing["metadata"].get("annotations") or {}
        if annotations.get(ANNOTATION_REQUEST_SHA256) != digest:
            raise IdempotencyMismatch(
                "this Idempotency-Key was used with another request body; use a new key"
            )
        stamp = submitted_at(existing)
        if stamp:
            then = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            age = datetime.datetime.now(tz=datetime.UTC) - then
            if age.total_seconds() > self.settings.idempotency_window_seconds:
                raise IdempotencyMismatch(
                    "this Idempotency-Key has expired (it is older than "
                    f"{self.settings.idempotency_window_seconds} s); use a new key"
                )
        return existing

    def _check_active(self, owner: str) -> None:
        limit = self.settings.max_active_jobs_per_owner
        active = sum(
            1
            for body in self.cache.values()
            if owner_of(body) == owner and not phase_of(body).terminal
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
        if owner_of(body) != owner:
            raise JobNotFound(job_id)  # another owner's job does not exist for this caller
        return body

    async def find(self, job_id: str, owner: str) -> dict[str, Any]:
        """:meth:`lookup` for async routes: a cache hit never leaves the event loop."""
        body = self.cache.get(job_id)
        if body is not None:
            if owner_of(body) != owner:
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

    def status(self, job_id: str, owner: str = "anonymous") -> schemas.JobStatusResponse:
        return self.describe(self.lookup(job_id, owner))

    def list(self, owner: str, limit: int, cursor: str | None) -> schemas.JobList:
        """The owner's jobs, newest first, ``limit`` at a time after ``cursor``."""
        mine = [b for b in self.cache.values() if owner_of(b) == owner]
        mine.sort(key=lambda b: (submitted_at(b), b["metadata"]["name"]), reverse=True)
        if cursor:
            after = _decode_cursor(cursor)
            mine = [b for b in mine if (submitted_at(b), b["metadata"]["name"]) < after]
        page = mine[:limit]
        more = len(mine) > limit
        return schemas.JobList(
            items=[self.describe(b) for b in page],
            nextCursor=_encode_cursor(page[-1]) if more and page else None,
        )

    def describe(self, body: dict[str, Any]) -> schemas.JobStatusResponse:
        """The API's view of a resource, with a freshly presigned URL when done."""
        status = model.parse_status(body)
        phase = status.phase or model.Phase.QUEUED
        result = None
        if phase is model.Phase.COMPLETED and status.result is not None:
            # The URL is for the bundle's own key (or, shared, that of the job that built it,
            # as the operator's annotation says), whatever bucket or key the status names.
            url, expires_at = self._storage.presign(
                self._namespace, body["metadata"]["name"], origin=_origin(body)
            )
            result = schemas.DownloadResult(
                downloadUrl=url,
                expiresAt=expires_at,
                size=status.result.size,
                sha256=status.result.sha256,
                checksumCrc32=status.result.checksum_crc32,
                missingFileIds=status.result.missing_file_ids,
            )
        error = None
        if status.error is not None:
            error = schemas.JobErrorBody(reason=status.error.reason, message=status.error.message)
        return schemas.JobStatusResponse(
            jobId=body["metadata"]["name"],
            status=phase.value.lower(),
            progress=100 if phase is model.Phase.COMPLETED else status.progress or 0,
            totalFileIds=len(body.get("spec", {}).get("fileIds", [])),
            filesDone=status.files_done or 0,
            filesTotal=status.files_total,
            bytesDone=status.bytes_done or 0,
            bytesTotal=status.bytes_total,
            attempts=status.attempts or 0,
            queuePosition=status.queue_position,
            etaSeconds=polling.eta_seconds(status, model.utcnow()),
            createdAt=body["metadata"].get("creationTimestamp"),
            startedAt=status.started_at,
            completedAt=status.completed_at,
            result=result,
            error=error,
        )

    def download_url(self, body: dict[str, Any]) -> str:
        """A newly signed URL of a completed job's bundle (409 before that), for ``/file``."""
        status = model.parse_status(body)
        if status.phase is not model.Phase.COMPLETED or status.result is None:
            state = (status.phase or model.Phase.QUEUED).value.lower()
            raise JobNotReady(f"job {body['metadata']['name']} is {state}; no bundle yet")
        name = body["metadata"]["name"]
        url, _ = self._storage.presign(self._namespace, name, reuse=False, origin=_origin(body))
        return url
