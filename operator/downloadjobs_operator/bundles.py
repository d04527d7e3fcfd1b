"""
The operator's S3 housekeeping: aborting partial uploads, removing bundles and
the workers' checkpoints (``<bundle key>.checkpoint``) with them.
"""

import logging
from typing import Any

from botocore.exceptions import ClientError

from downloadjobs import model, s3
from downloadjobs.settings import S3Settings

log = logging.getLogger(__name__)


def abort_uploads(client: Any, settings: S3Settings, key: str) -> int:
    """Abort every unfinished multipart upload of ``key``; how many there were."""
    answer = client.list_multipart_uploads(Bucket=settings.bundle_bucket, Prefix=key)
    aborted = 0
    for upload in answer.get("Uploads", []):
        if upload["Key"] != key:
            continue
        try:
            client.abort_multipart_upload(
                Bucket=settings.bundle_bucket, Key=key, UploadId=upload["UploadId"]
            )
        except ClientError as exc:
            # A worker shutting down aborts its own upload between our list and abort.
            if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                raise
        aborted += 1
    return aborted


def remove_checkpoint(client: Any, settings: S3Settings, key: str) -> None:
    """A checkpoint outlives its upload only to be refused: it goes with the upload."""
    client.delete_object(Bucket=settings.bundle_bucket, Key=f"{key}.checkpoint")


def remove_bundle(client: Any, settings: S3Settings, key: str) -> None:
    client.delete_object(Bucket=settings.bundle_bucket, Key=key)


def bundle_exists(client: Any, settings: S3Settings, key: str) -> bool:
    return s3.heads(client, settings.bundle_bucket, {0: key})[0] is not None


def content_key(client: Any, settings: S3Settings, file_ids: list[int], compression: str) -> str:
    """The content key a worker would give the bundle of ``file_ids`` now (one HEAD per source)."""
    keys = {file_id: settings.source_key(file_id) for file_id in file_ids}
    found = s3.heads(client, settings.source_bucket, keys, workers=16)
    etags = {file_id: head.etag if head else None for file_id, head in found.items()}
    return model.content_key(file_ids, etags, compression)
