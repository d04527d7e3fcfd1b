"""The boto3 S3 clients, configured once from :class:`S3Settings`."""

from typing import Any

import boto3
from botocore.config import Config

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
    return boto3.client("s3", endpoint_url=endpoint, config=config, **(credentials or {}))
