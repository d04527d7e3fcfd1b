"""Settings of one worker run, from the pod's environment (``DOWNLOADJOBS_*``)."""

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DOWNLOADJOBS_", extra="ignore")

    job_name: str = Field(description="The DownloadJob this pod works for.")
    job_namespace: str = "default"
    worker_part_size: int = Field(
        default=8 * 1024 * 1024, ge=5 * 1024 * 1024, description="Multipart part size, bytes."
    )
    worker_upload_concurrency: int = Field(
        default=4,
        ge=1,
        le=16,
        description="Parts uploaded at once; memory holds this many parts plus one.",
    )
    worker_prefetch: int = Field(
        default=2,
        ge=1,
        le=16,
        description="GETs of the next files opened while the current one streams.",
    )
    worker_compression: Literal["stored", "deflated"] = Field(
        default="stored", description="Sources are ZIPs already: storing is as small and faster."
    )
    worker_progress_interval: float = Field(
        default=1.0, ge=0.1, description="At most one status write per this many seconds."
    )
    worker_delay_min_ms: int = Field(
        default=0, ge=0, description="Simulated slowness per file (dev only), lower bound."
    )
    worker_delay_max_ms: int = Field(default=0, ge=0, description="Upper bound of the above.")

    @model_validator(mode="after")
    def _delay_range(self) -> "WorkerSettings":
        if self.worker_delay_max_ms < self.worker_delay_min_ms:
            raise ValueError("worker_delay_max_ms must be >= worker_delay_min_ms")
        return self
