"""
One worker run: read the job, build the bundle, report the result, exit.

Exit codes (the Job's podFailurePolicy reads them):

====  ==========================================================
0     the bundle is uploaded and ``status.result`` written
1     a transient failure (S3 or API unreachable): the Job retries
42    a permanent failure (all sources missing, bad spec or settings): no retry
====  ==========================================================

Running twice for the same job is harmless: the bundle key is fixed and the
object only appears when its multipart upload completes. A pod that finds a
checkpoint of an earlier one continues that upload when :func:`checkpoint.plan`
allows it, and starts from scratch when it does not.
"""

import logging
import signal
import sys
import zipfile
from typing import Any

from botocore.exceptions import ClientError

from downloadjobs import contract, s3
from downloadjobs.settings import S3Settings, SettingsError
from downloadjobs_worker import checkpoint, kubeapi, wire, zipstate
from downloadjobs_worker.bundle import Progress, Source, locate, write_zip
from downloadjobs_worker.checkpoint import Checkpoint, Part, SourceState
from downloadjobs_worker.reporter import StatusReporter
from downloadjobs_worker.settings import WorkerSettings
from downloadjobs_worker.upload import MultipartWriter

EXIT_OK = 0
EXIT_TRANSIENT = 1
EXIT_PERMANENT = contract.EXIT_PERMANENT

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


def resumable(
    client: Any,
    bucket: str,
    key: str,
    states: list[SourceState],
    missing: list[int],
    settings: WorkerSettings,
    compression: int,
) -> tuple[Checkpoint, list[Part]] | None:
    """
    The checkpoint to continue from and its uploaded parts, or None to start afresh.

    An upload that cannot be continued is aborted here, so it does not linger.
    """
    saved = checkpoint.load(client, bucket, checkpoint.checkpoint_key(key))
    if saved is None:
        return None
    if isinstance(saved, Checkpoint):
        listed = checkpoint.list_parts(client, bucket, key, saved.upload_id)
        verdict = checkpoint.plan(
            saved,
            sources=states,
            missing=missing,
            listed=listed,
            part_size=settings.worker_part_size,
            compression=compression,
        )
        if isinstance(verdict, Checkpoint):
            parts = [p for p in listed or [] if p.number <= verdict.parts]
            return verdict, parts
        if listed is not None:
            try:
                client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=saved.upload_id)
            except ClientError as exc:
                log.warning("could not abort the stale upload: %s", exc)
        saved = verdict
    log.warning("starting the bundle afresh (%s): %s", saved.reason, saved.message)
    return None


def build(
    settings: WorkerSettings, s3_settings: S3Settings, reporter: StatusReporter
) -> wire.BundleResult:
    body = reporter.read()
    log.info("read DownloadJob %s/%s", settings.job_namespace, settings.job_name)
    try:
        spec = wire.parse_spec(body)
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

    status = wire.WorkerStatus(
        progress=0,
        files_total=len(keys),
        files_done=len(missing),
        bytes_total=sum(s.size for s in sources),
        bytes_done=0,
    )
    progress = Progress(files_total=len(keys), bytes_total=status.bytes_total or 0)
    progress.files_done = len(missing)

    def on_progress(p: Progress) -> None:
        status.progress = min(p.percent, 99)  # 100 means the upload is complete
        status.files_done = p.files_done
        status.bytes_done = p.bytes_done
        reporter.progress(status)

    bucket = s3_settings.bundle_bucket
    key = s3_settings.bundle_key(settings.job_namespace, settings.job_name)
    checkpoint_key = checkpoint.checkpoint_key(key)
    compression = (
        zipfile.ZIP_DEFLATED if settings.worker_compression == "deflated" else zipfile.ZIP_STORED
    )
    states = [SourceState(file_id=s.file_id, key=s.key, size=s.size, etag=s.etag) for s in sources]
    found = resumable(client, bucket, key, states, missing, settings, compression)
    saved = found[0] if found else None
    stamp = saved.stamp if saved else zipstate.now_stamp()
    entries = list(saved.entries) if saved else []

    def save(upload_id: str, parts: int, point: checkpoint.Point) -> None:
        snapshot = Checkpoint(
            upload_id=upload_id,
            part_size=settings.worker_part_size,
            parts=parts,
            compression=compression,
            stamp=stamp,
            sources=states,
            missing=missing,
            point=point,
            entries=entries[: point.index],
        )
        checkpoint.save(client, bucket, checkpoint_key, snapshot)
        status.parts_uploaded = parts

    def get(source: Source, offset: int = 0) -> Any:
        """A source's bytes from ``offset``, only if it is still the file the HEAD saw."""
        ranged = {"Range": f"bytes={offset}-"} if offset else {}
        answer = client.get_object(
            Bucket=s3_settings.source_bucket, Key=source.key, IfMatch=source.etag, **ranged
        )
        return answer["Body"]

    resume = (saved.upload_id, found[1], saved.point) if saved and found else None
    with MultipartWriter(
        client,
        bucket,
        key,
        settings.worker_part_size,
        concurrency=settings.worker_upload_concurrency,
        on_checkpoint=save,
        resume=resume,
    ) as out:
        status.upload_id = out.upload_id
        if saved is not None:
            status.resumed_from_part = saved.parts  # the operator posts an event for it
            log.info("resuming upload %s after part %d", saved.upload_id, saved.parts)
        write_zip(
            out,
            sources,
            get,
            progress,
            on_progress,
            compression=compression,
            delay_ms=(settings.worker_delay_min_ms, settings.worker_delay_max_ms),
            prefetch=settings.worker_prefetch,
            stamp=stamp,
            entries=entries,
            resume=saved.point if saved else None,
            open_from=get,
            mark=out.mark,
        )
        out.complete()
    log.info("bundle uploaded: %d bytes, %d read from sources", out.size, progress.bytes_read)
    try:
        client.delete_object(Bucket=bucket, Key=checkpoint_key)
    except ClientError as exc:  # the operator removes it with the bundle
        log.warning("checkpoint not removed: %s", exc)
    result = wire.BundleResult(
        bucket=bucket,
        key=key,
        size=out.size,
        checksum_crc32=out.crc32,
        missing_file_ids=missing,
        content_key=contract.content_key(
            spec.file_ids, {s.file_id: s.etag for s in sources}, settings.worker_compression
        ),
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
    try:
        settings = WorkerSettings.from_environment()
        s3_settings = S3Settings.from_environment()
    except SettingsError as exc:  # the pod's spec is wrong: another try changes nothing
        log.error("invalid settings: %s", exc)
        return EXIT_PERMANENT
    try:
        api = kubeapi.DownloadJobApi(kubeapi.discover())
    except (kubeapi.ConfigError, OSError, ValueError) as exc:
        log.error("no usable Kubernetes credentials: %s", exc)
        return EXIT_TRANSIENT
    reporter = StatusReporter(
        api,
        settings.job_namespace,
        settings.job_name,
        settings.worker_progress_interval,
    )
    try:
        result = build(settings, s3_settings, reporter)
    except PermanentFailure as failure:
        log.error("job %s failed for good: %s", settings.job_name, failure.message)
        error = wire.JobError(reason=failure.reason, message=failure.message)
        reporter.final(wire.WorkerStatus(error=error))
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
