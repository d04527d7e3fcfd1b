"""
The S3 clients, configured once from :class:`S3Settings`, and what both the
operator and the worker ask of S3.

The clients come from botocore's own session, which is what ``boto3.client`` returns
too: boto3 adds its resources and s3transfer's managed transfers, which nothing here
uses (the worker has its own multipart writer). Without them a worker pod starts with
2.6 MiB less memory and, in ``benchmarks/worker_start.py``, about 0.02 s sooner.
"""

import concurrent.futures
from typing import Any, NamedTuple

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

from downloadjobs.settings import S3Settings


def client(
    settings: S3Settings,
    *,
    public: bool = False,
    credentials: dict[str, str] | None = None,
    max_pool_connections: int = 10,
) -> Any:
    """
    An S3 client. ``public`` gives the one for presigning: it signs for the
    endpoint a browser reaches, which differs from the in-cluster one when S3 is
    a MinIO service inside the cluster. ``max_pool_connections`` is for callers
    that run more requests at once than botocore's default of 10 (the worker).
    """
    endpoint = settings.endpoint_url
    if public and settings.public_endpoint_url:
        endpoint = settings.public_endpoint_url
    config = Config(
        region_name=settings.region,
        signature_version="s3v4",
        retries={"mode": "standard", "max_attempts": settings.max_attempts},
        s3={"addressing_style": "path" if settings.path_style else "auto"},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=max_pool_connections,
    )
    session = botocore.session.get_session()
    return session.create_client("s3", endpoint_url=endpoint, config=config, **(credentials or {}))


class Head(NamedTuple):
    size: int
    etag: str


def not_found(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


def heads(
    client: Any, bucket: str, keys: dict[int, str], *, workers: int = 8
) -> dict[int, Head | None]:
    """
    HEAD every key, ``workers`` at a time (a thousand small requests one after another
    cost seconds of round trips): size and ETag by id, ``None`` for a missing object.
    """

    def head(key: str) -> Head | None:
        try:
            answer = client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if not_found(exc):
                return None
            raise
        return Head(int(answer["ContentLength"]), str(answer.get("ETag", "")))

    with concurrent.futures.ThreadPoolExecutor(max(1, min(workers, len(keys) or 1))) as pool:
        found = list(pool.map(head, keys.values()))
    return dict(zip(keys, found, strict=True))
