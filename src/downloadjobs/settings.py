"""
Settings shared by the API, the operator and the worker, read from the environment.

Every variable starts with ``DOWNLOADJOBS_``; S3 credentials are never settings
here: boto3 finds them itself (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``
from a Secret, or the pod's identity through IRSA or workload identity).
"""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class S3Settings(BaseSettings):
    """Where the source files are and where bundles go."""

    model_config = SettingsConfigDict(env_prefix="DOWNLOADJOBS_S3_", extra="ignore")

    endpoint_url: str | None = Field(
        default=None, description="S3 endpoint the pods use; unset means AWS."
    )
    public_endpoint_url: str | None = Field(
        default=None,
        description="S3 endpoint a browser reaches, for presigned URLs; unset: endpoint_url.",
    )
    region: str = "us-east-1"
    path_style: bool = Field(default=False, description="Path-style addressing (MinIO, moto).")
    source_bucket: str = "downloads-source"
    source_prefix: str = "files"
    bundle_bucket: str = "downloads-bundles"
    bundle_prefix: str = "bundles"
    presign_expiry_seconds: int = Field(default=900, ge=60, le=7 * 24 * 3600)
    max_attempts: int = Field(default=5, ge=1, description="botocore retries per S3 call.")

    def source_key(self, file_id: int) -> str:
        return f"{self.source_prefix}/{file_id}.zip"

    def bundle_key(self, namespace: str, job_id: str) -> str:
        return f"{self.bundle_prefix}/{namespace}/{job_id}.zip"

    def environment(self) -> dict[str, str]:
        """These settings as the ``DOWNLOADJOBS_S3_*`` variables that read them back."""
        return {
            f"DOWNLOADJOBS_S3_{name.upper()}": str(value).lower()
            if isinstance(value, bool)
            else str(value)
            for name, value in self.model_dump(mode="json").items()
            if value is not None
        }


class KubeSettings(BaseSettings):
    """How to reach the Kubernetes API, and which namespace is ours."""

    model_config = SettingsConfigDict(env_prefix="DOWNLOADJOBS_", extra="ignore")

    namespace: str = "default"
