"""
The DownloadJob store: creating and reading resources on the Kubernetes API.

Everything the routes need about jobs goes through :class:`JobService`, so the
routes stay free of Kubernetes details and the tests can swap the store.
"""

import datetime
import uuid
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from downloadjobs import model
from downloadjobs_api import schemas
from downloadjobs_api.storage import Storage


class JobNotFound(LookupError):
    """No such job (or not one the caller may see)."""


class JobConflict(Exception):
    """The job is not in a state where the request makes sense (409)."""


class JobService:
    def __init__(self, api: Any, namespace: str, storage: Storage) -> None:
        self._api = api  # kubernetes.client.CustomObjectsApi
        self._namespace = namespace
        self._storage = storage

    @classmethod
    def from_client(cls, namespace: str, storage: Storage) -> "JobService":
        return cls(kubernetes.client.CustomObjectsApi(), namespace, storage)

    def create(self, request: schemas.InitiateRequest, owner: str) -> schemas.InitiateResponse:
        spec = model.DownloadJobSpec(file_ids=request.file_ids, owner=owner)
        job_id = str(uuid.uuid4())
        body = {
            "apiVersion": model.API_VERSION,
            "kind": model.KIND,
            "metadata": {
                "name": job_id,
                "namespace": self._namespace,
                "labels": {model.LABEL_MANAGED_BY: model.MANAGED_BY},
                "annotations": {
                    model.ANNOTATION_SUBMITTED_AT: datetime.datetime.now(
                        tz=datetime.UTC
                    ).isoformat()
                },
            },
            "spec": spec.to_wire(),
        }
        self._api.create_namespaced_custom_object(
            model.GROUP, model.VERSION, self._namespace, model.PLURAL, body
        )
        return schemas.InitiateResponse(jobId=job_id, totalFileIds=len(spec.file_ids))

    def fetch(self, job_id: str) -> dict[str, Any]:
        try:
            body: dict[str, Any] = self._api.get_namespaced_custom_object(
                model.GROUP, model.VERSION, self._namespace, model.PLURAL, job_id
            )
        except ApiException as exc:
            if exc.status == 404:
                raise JobNotFound(job_id) from exc
            raise
        return body

    def status(self, job_id: str) -> schemas.JobStatusResponse:
        return self.describe(self.fetch(job_id))

    def describe(self, body: dict[str, Any]) -> schemas.JobStatusResponse:
        """The API's view of a resource, with a freshly presigned URL when done."""
        status = model.parse_status(body)
        phase = status.phase or model.Phase.QUEUED
        result = None
        if phase is model.Phase.COMPLETED and status.result is not None:
            url, expires_at = self._storage.presign(status.result, body["metadata"]["name"])
            result = schemas.DownloadResult(
                downloadUrl=url,
                expiresAt=expires_at,
                size=status.result.size,
                sha256=status.result.sha256,
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
            createdAt=body["metadata"].get("creationTimestamp"),
            startedAt=status.started_at,
            completedAt=status.completed_at,
            result=result,
            error=error,
        )

    def cancel(self, job_id: str) -> schemas.JobStatusResponse:
        """Ask the operator to cancel; a finished job cannot be (409)."""
        body = self.fetch(job_id)
        phase = model.parse_status(body).phase
        if phase is not None and phase.terminal:
            raise JobConflict(f"job {job_id} is {phase.value.lower()} already; nothing to cancel")
        return self._request(body, model.ANNOTATION_CANCEL)

    def retry(self, job_id: str) -> schemas.JobStatusResponse:
        """Put a failed job (a dead letter) back in the queue; only failed jobs can be (409)."""
        body = self.fetch(job_id)
        phase = model.parse_status(body).phase
        if phase is not model.Phase.FAILED:
            state = (phase or model.Phase.QUEUED).value.lower()
            raise JobConflict(f"job {job_id} is {state}; only failed jobs can be retried")
        return self._request(body, model.ANNOTATION_RETRY)

    def _request(self, body: dict[str, Any], annotation: str) -> schemas.JobStatusResponse:
        """Record a request for the operator as an annotation (what kubectl annotate does)."""
        name = body["metadata"]["name"]
        stamp = datetime.datetime.now(tz=datetime.UTC).isoformat()
        patched: dict[str, Any] = self._api.patch_namespaced_custom_object(
            model.GROUP,
            model.VERSION,
            self._namespace,
            model.PLURAL,
            name,
            {"metadata": {"annotations": {annotation: stamp}}},
        )
        return self.describe(patched)

    def ping(self) -> None:
        """Raise when the Kubernetes API cannot list our jobs."""
        self._api.list_namespaced_custom_object(
            model.GROUP, model.VERSION, self._namespace, model.PLURAL, limit=1
        )
