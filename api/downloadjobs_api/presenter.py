"""
A DownloadJob as the API shows it: the status answer, and the presigned URL of its
bundle (for the job's own key, or the one of the job that built a shared bundle,
as the operator's annotation says; never a key read from the status).
"""

from typing import Any

from downloadjobs import model, resource
from downloadjobs_api import polling, schemas
from downloadjobs_api.storage import Storage


class JobConflict(Exception):
    """The job is not in a state where the request makes sense (409)."""


class JobNotReady(JobConflict):
    """The job has no bundle to download yet (409)."""


def origin(body: dict[str, Any]) -> str | None:
    """The job whose bundle this one shares (the operator's annotation), if any."""
    return resource.annotations(body).get(model.ANNOTATION_BUNDLE_OF)


class Presenter:
    def __init__(self, storage: Storage, namespace: str) -> None:
        self._storage = storage
        self._namespace = namespace

    def describe(self, body: dict[str, Any]) -> schemas.JobStatusResponse:
        """The API's view of a resource, with a presigned URL when done (reused while fresh)."""
        status = model.parse_status(body)
        phase = status.phase or model.Phase.QUEUED
        result = None
        if phase is model.Phase.COMPLETED and status.result is not None:
            # The URL is for the bundle's own key (or, shared, that of the job that built it,
            # as the operator's annotation says), whatever bucket or key the status names.
            url, expires_at = self._storage.presign(
                self._namespace, body["metadata"]["name"], origin=origin(body)
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
        url, _ = self._storage.presign(self._namespace, name, reuse=False, origin=origin(body))
        return url
