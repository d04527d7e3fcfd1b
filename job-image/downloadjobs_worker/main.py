"""
One worker run: read the job, build the bundle, report the result, exit.

Exit codes (the Job's podFailurePolicy reads them):

====  ==========================================================
0     the bundle is uploaded and ``status.result`` written
1     a transient failure (S3 or API unreachable): the Job retries
42    a permanent failure (all sources missing, bad spec): no retry
====  ==========================================================

Running twice for the same job is harmless: the bundle key is fixed and the
object only appears when its multipart upload completes.
"""

import logging
import signal
import sys
import zipfile

import kubernetes
from botocore.exceptions import ClientError

from downloadjobs import kube, model, s3
from downloadjobs.settings import S3Settings
from downloadjobs_worker.bundle import Progress, locate, write_zip
from downloadjobs_worker.reporter import StatusReporter
from downloadjobs_worker.settings import WorkerSettings
from downloadjobs_worker.upload import MultipartWriter

EXIT_OK = 0
EXIT_TRANSIENT = 1
EXIT_PERMANENT = model.EXIT_PERMANENT

#: S3 answers that no retry can change.
PERMANENT_S3_ERRORS = {
    "403",
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "NoSuchBucket",
}

log = logging.getLogger("downloadjobs.worker")


class PermanentFailure(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def build(
    settings: WorkerSettings, s3_settings: S3Settings, reporter: StatusReporter
) -> model.BundleResult:
    body = reporter.read()
    log.info("read DownloadJob %s/%s", settings.job_namespace, settings.job_name)
    try:
        spec = model.DownloadJobSpec.model_validate(body.get("spec") or {})
    except ValueError as exc:
        raise PermanentFailure("InvalidSpec", f"the job's spec is invalid: {exc}") from exc

    # Every part upload, the read-ahead, a status probe and the HEADs share the pool.
    client = s3.client(s3_settings, max_pool_connections=settings.worker_upload_concurrency + 8)
    keys = {file_id: s3_settings.source_key(file_id) for file_id in spec.file_ids}
    try:
        sources, missing = locate(client, s3_settings.source_bucket, keys, workers=8)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in PERMANENT_S3_ERRORS:
            raise PermanentFailure(
                "AccessDenied" if code != "NoSuchBucket" else "NoSuchBucket",
                f"the source bucket refused access ({code}); retrying will not help",
            ) from exc
        raise
    log.info("%d of %d sources present; building the bundle", len(sources), len(keys))
    if not sources:
        raise PermanentFailure(
            "AllFilesMissing",
            f"none of the {len(keys)} requested files exists in the source bucket",
        )

    status = model.DownloadJobStatus(
        progress=0,
        files_total=len(keys),
        files_done=len(missing),
        bytes_total=sum(s.size for s in sources),
        bytes_done=0,
    )
    reporter.progress(status, force=True)
    progress = Progress(files_total=len(keys), bytes_total=status.bytes_total or 0)
    progress.files_done = len(missing)

    def on_progress(p: Progress) -> None:
        status.progress = min(p.percent, 99)  # 100 means the upload is complete
        status.files_done = p.files_done
        status.bytes_done = p.bytes_done
        reporter.progress(status)

    key = s3_settings.bundle_key(settings.job_namespace, settings.job_name)
    compression = (
        zipfile.ZIP_DEFLATED if settings.worker_compression == "deflated" else zipfile.ZIP_STORED
    )
    with MultipartWriter(
        client,
        s3_settings.bundle_bucket,
        key,
        settings.worker_part_size,
        concurrency=settings.worker_upload_concurrency,
    ) as out:
        write_zip(
            out,
            sources,
            lambda src: client.get_object(Bucket=s3_settings.source_bucket, Key=src.key)["Body"],
            progress,
            on_progress,
            compression=compression,
            delay_ms=(settings.worker_delay_min_ms, settings.worker_delay_max_ms),
            prefetch=settings.worker_prefetch,
        )
        out.complete()
    log.info("bundle uploaded: %d bytes", out.size)
    result = model.BundleResult(
        bucket=s3_settings.bundle_bucket,
        key=key,
        size=out.size,
        sha256=out.sha256,
        missing_file_ids=missing,
    )
    status.result = result
    status.progress = 100
    status.files_done = len(keys)
    reporter.final(status)
    return result


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(EXIT_TRANSIENT)


def run() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Kubernetes stops a pod with SIGTERM first: unwind, so the upload is aborted.
    signal.signal(signal.SIGTERM, _terminated)
    settings = WorkerSettings()
    s3_settings = S3Settings()
    kube.load_config()
    reporter = StatusReporter(
        kubernetes.client.CustomObjectsApi(),
        settings.job_namespace,
        settings.job_name,
        settings.worker_progress_interval,
    )
    try:
        result = build(settings, s3_settings, reporter)
    except PermanentFailure as failure:
        log.error("job %s failed for good: %s", settings.job_name, failure.message)
        error = model.JobError(reason=failure.reason, message=failure.message)
        reporter.final(model.DownloadJobStatus(error=error))
        return EXIT_PERMANENT
    except Exception:
        log.exception("job %s failed; the Job will retry", settings.job_name)
        return EXIT_TRANSIENT
    finally:
        reporter.close()
    log.info(
        "job %s done: %s bytes at s3://%s/%s, %d missing",
        settings.job_name,
        result.size,
        result.bucket,
        result.key,
        len(result.missing_file_ids),
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(run())
