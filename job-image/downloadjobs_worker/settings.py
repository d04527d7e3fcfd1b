"""Settings of one worker run, from the pod's environment (``DOWNLOADJOBS_*``)."""

from typing import Annotated, Literal

from msgspec import Meta

from downloadjobs.settings import EnvironmentSettings


class WorkerSettings(EnvironmentSettings, kw_only=True):
    #: The DownloadJob this pod works for.
    job_name: str
    job_namespace: str = "default"
    #: Multipart part size, bytes.
    worker_part_size: Annotated[int, Meta(ge=5 * 1024 * 1024)] = 8 * 1024 * 1024
    #: Parts uploaded at once; memory holds this many parts plus one.
    worker_upload_concurrency: Annotated[int, Meta(ge=1, le=16)] = 4
    #: GETs of the next files opened while the current one streams.
    worker_prefetch: Annotated[int, Meta(ge=1, le=16)] = 2
    #: Sources are ZIPs already: storing is as small and faster.
    worker_compression: Literal["stored", "deflated"] = "stored"
    #: At most one status write per this many seconds.
    worker_progress_interval: Annotated[float, Meta(ge=0.1)] = 1.0
    #: Simulated slowness per file (dev only), lower bound.
    worker_delay_min_ms: Annotated[int, Meta(ge=0)] = 0
    #: Upper bound of the above.
    worker_delay_max_ms: Annotated[int, Meta(ge=0)] = 0

    def __post_init__(self) -> None:
        if self.worker_delay_max_ms < self.worker_delay_min_ms:
            raise ValueError("worker_delay_max_ms must be >= worker_delay_min_ms")
