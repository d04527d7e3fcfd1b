"""The operator's S3 housekeeping tolerates a worker that aborts its own upload first."""

from typing import Any

import pytest
from botocore.exceptions import ClientError

from downloadjobs.settings import S3Settings
from downloadjobs_operator import bundles

KEY = "bundles/ns/job.zip"


class RacingClient:
    """Lists one upload whose abort then fails with ``code`` (the worker got there first)."""

    def __init__(self, code: str) -> None:
        self.code = code

    def list_multipart_uploads(self, **_: Any) -> dict[str, Any]:
        return {"Uploads": [{"Key": KEY, "UploadId": "u1"}, {"Key": KEY + ".x", "UploadId": "u2"}]}

    def abort_multipart_upload(self, **_: Any) -> None:
        raise ClientError({"Error": {"Code": self.code, "Message": "…"}}, "AbortMultipartUpload")


def test_an_upload_aborted_meanwhile_counts_as_aborted() -> None:
    assert bundles.abort_uploads(RacingClient("NoSuchUpload"), S3Settings(), KEY) == 1


def test_other_s3_errors_still_fail_the_handler_for_a_retry() -> None:
    with pytest.raises(ClientError):
        bundles.abort_uploads(RacingClient("AccessDenied"), S3Settings(), KEY)
