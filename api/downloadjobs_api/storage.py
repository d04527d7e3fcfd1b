"""S3 access for the API: availability checks and presigned download URLs."""

import datetime
from typing import Any

from botocore.exceptions import ClientError

from downloadjobs import model, s3
from downloadjobs.settings import S3Settings
from downloadjobs_api import schemas


class Storage:
    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self._client: Any = s3.client(settings)
        self._signer: Any = s3.client(settings, public=True)

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

    def presign(self, result: model.BundleResult, job_id: str) -> tuple[str, datetime.datetime]:
        """A short-lived GET URL for the bundle, signed for the browser-facing endpoint."""
        expiry = self.settings.presign_expiry_seconds
        url: str = self._signer.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": result.bucket,
                "Key": result.key,
                "ResponseContentDisposition": f'attachment; filename="download-{job_id}.zip"',
            },
            ExpiresIn=expiry,
        )
        return url, model.utcnow() + datetime.timedelta(seconds=expiry)

    def ping(self) -> None:
        """Raise when the source bucket cannot be reached."""
        self._client.head_bucket(Bucket=self.settings.source_bucket)
