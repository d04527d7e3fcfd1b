"""Settings of the operator (``DOWNLOADJOBS_OPERATOR_*``): what every Job it creates looks like."""

from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The ``restricted`` Pod Security Standard, for worker pods (the chart passes the same).
DEFAULT_POD_SECURITY_CONTEXT: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "fsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
DEFAULT_CONTAINER_SECURITY_CONTEXT: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DOWNLOADJOBS_OPERATOR_", extra="ignore")

    worker_image: str = Field(
        default="ghcr.io/downloadjobs/downloadjobs:0.1.0", description="Image of the Job pods."
    )
    worker_image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: list[dict[str, str]] = Field(
        default_factory=list, description="imagePullSecrets of the worker pods."
    )
    pod_security_context: dict[str, Any] = Field(
        default_factory=lambda: dict(DEFAULT_POD_SECURITY_CONTEXT)
    )
    container_security_context: dict[str, Any] = Field(
        default_factory=lambda: dict(DEFAULT_CONTAINER_SECURITY_CONTEXT)
    )
    worker_command: list[str] = Field(default_factory=lambda: ["downloadjobs", "worker"])
    worker_service_account: str = Field(
        default="downloadjobs-worker", description="May only read its job and patch its status."
    )
    backoff_limit: int = Field(default=3, ge=0, description="Pod retries before a job fails.")
    active_deadline_seconds: int = Field(default=3600, ge=30, description="Hard limit per Job.")
    ttl_seconds_after_finished: int = Field(
        default=300, ge=0, description="Finished Jobs go; the DownloadJob keeps the result."
    )
    s3_secret_name: str | None = Field(
        default=None, description="Secret with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for pods."
    )
    worker_env: dict[str, str] = Field(
        default_factory=dict, description="Extra plain environment for the worker pods."
    )
    max_running: int = Field(
        default=10, ge=1, description="Running Jobs per namespace; the rest wait, FIFO."
    )
    max_running_per_owner: int = Field(
        default=0, ge=0, description="Running Jobs per owner; 0 means no per-owner cap."
    )
    ttl_completed_seconds: int = Field(
        default=24 * 3600, ge=0, description="Completed DownloadJobs are deleted after this."
    )
    ttl_failed_seconds: int = Field(
        default=7 * 24 * 3600, ge=0, description="Failed (dead-letter) ones after this."
    )
    keep_bundles: bool = Field(
        default=False, description="Keep the bundle in S3 when its DownloadJob is deleted."
    )
    reuse_bundles: bool = Field(
        default=True,
        description="A new job for the same files, none changed, completes with the bundle "
        "already built (any caller may read any file id).",
    )
    stall_seconds: int = Field(
        default=300, ge=10, description="A running job with an older heartbeat is stalled."
    )
    reconcile_interval: float = Field(
        default=30.0, gt=0, description="Seconds between checks of each job against its Job."
    )
    peering_lifetime: int = Field(
        default=60,
        ge=1,
        description="Seconds a killed replica's peering keep-alive counts; a standby resumes then.",
    )
    metrics_port: int = Field(default=0, ge=0, description="Prometheus metrics port; 0: none.")
    threads: int = Field(default=32, ge=2, description="Threads for blocking API calls.")
    cpu_request: str = "100m"
    memory_request: str = "192Mi"
    cpu_limit: str = "1"
    memory_limit: str = "256Mi"

    @property
    def worker_compression(self) -> str:
        """The compression the worker pods are given (part of a bundle's content key)."""
        return self.worker_env.get("DOWNLOADJOBS_WORKER_COMPRESSION", "stored")
