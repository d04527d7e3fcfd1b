"""
S3 access for the API: availability checks and presigned download URLs.

A URL is signed for the one object a job's bundle can be: the configured bundle
bucket, at the key the worker writes it to (``S3Settings.bundle_key`` of the
namespace and the job id). Never for a bucket or key read from the job's status:
a worker may write any status, and a URL to whatever it named would hand another
owner's bundle (or a source file) to this job's owner.
"""

import datetime
import threading
import time
from typing import Any

from botocore.exceptions import ClientError

from downloadjobs import model, s3
from downloadjobs.settings import S3Settings
from downloadjobs_api import schemas

#: A presigned URL is handed out again while at least this share of its lifetime
#: is left. Signing costs more than the rest of a poll, and every poll of a
#: completed job carries a URL; reusing it keeps that poll cheap, and a client
#: still always gets a URL with most of its life ahead.
REUSE_SHARE = 0.75
#: At most this many URLs are remembered (the oldest are forgotten first).
REUSE_CAPACITY = 10_000


class Storage:
    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self._client: Any = s3.client(settings)
        self._signer: Any = s3.client(settings, public=True)
        # (bucket, key, job) -> (url, expires at, reusable until: monotonic seconds)
        self._urls: dict[tuple[str, str, str], tuple[str, datetime.datetime, float]] = {}
        self._lock = threading.Lock()

    def check(self, file_id: int) -> schemas.CheckResponse:
        key = self.settings.source_key(file_id)
        try:
            head = self._client.head_object(Bucket=self.settings.source_bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return schemas.CheckResponse(file_id=file_id, available=False, s3Key=key)
            raise
        return schemas.CheckResponse(
            file_id=file_id, available=True, s3Key=key, size=head["ContentLength"]
        )

    def bundle(self, namespace: str, job_id: str) -> tuple[str, str]:
        """The bucket and key of job ``job_id``'s bundle in ``namespace``."""
        return self.settings.bundle_bucket, self.settings.bundle_key(namespace, job_id)

    def presign(
        self, namespace: str, job_id: str, reuse: bool = True, *, origin: str | None = None
    ) -> tuple[str, datetime.datetime]:
        """
        A short-lived GET URL for the job's bundle, signed for the browser-facing
        endpoint, and when it expires. ``origin`` names the job that built the
        bundle when this one shares it (from the operator's annotation, never from
        the status). With ``reuse``, the one signed last for this bundle while it
        has at least :data:`REUSE_SHARE` of its lifetime left; else (and without
        ``reuse``) a new one.
        """
        bucket, key = self.bundle(namespace, origin or job_id)
        cache_key = (bucket, key, job_id)
        now = time.monotonic()
        cached = self._urls.get(cache_key)
        if reuse and cached is not None and now < cached[2]:
            return cached[0], cached[1]
        url, expires_at = self._sign(bucket, key, job_id)
        reusable_for = (1 - REUSE_SHARE) * self.settings.presign_expiry_seconds
        with self._lock:
            if len(self._urls) >= REUSE_CAPACITY:
                self._urls.pop(next(iter(self._urls)))
            self._urls[cache_key] = (url, expires_at, now + reusable_for)
        return url, expires_at

    def _sign(self, bucket: str, key: str, job_id: str) -> tuple[str, datetime.datetime]:
        expiry = self.settings.presign_expiry_seconds
        url: str = self._signer.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": bucket,
                "Key": key,
                "ResponseContentDisposition": f'attachment; filename="download-{job_id}.zip"',
            },
            ExpiresIn=expiry,
        )
        return url, model.utcnow() + datetime.timedelta(seconds=expiry)

    def ping(self) -> None:
        """Raise when the source bucket cannot be reached."""
        self._client.head_bucket(Bucket=self.settings.source_bucket)
