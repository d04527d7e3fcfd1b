"""
What the operator does, one function per intent, on plain dicts.

Each function is safe to repeat: a crash at any point and a retry (kopf retries
unfinished handlers, the reconcile timer repairs the rest) reach the same end.
They return what happened, for the handlers to turn into events.
"""

import dataclasses
import datetime
from typing import Any

from downloadjobs import model
from downloadjobs.settings import S3Settings
from downloadjobs_operator import bundles, manifests, metrics
from downloadjobs_operator.cluster import Cluster
from downloadjobs_operator.settings import OperatorSettings
from downloadjobs_operator.status import attempts_of, failures_of, status_patch, transition

#: ``error.reason`` of a job whose worker pod the API server refuses to create.
REFUSED = "PodRefused"


@dataclasses.dataclass
class Context:
    """Everything the actions need, built once at start-up."""

    cluster: Cluster
    s3: Any  # boto3 S3 client
    s3_settings: S3Settings
    settings: OperatorSettings
    #: resume events this process posted or found posted (saves a 409 per reconcile)
    announced: set[str] = dataclasses.field(default_factory=set)


def _meta(body: dict[str, Any]) -> tuple[str, str]:
    return body["metadata"]["namespace"], body["metadata"]["name"]


def bundle_key(ctx: Context, body: dict[str, Any]) -> str:
    namespace, name = _meta(body)
    return ctx.s3_settings.bundle_key(namespace, name)


def enqueue(ctx: Context, body: dict[str, Any]) -> bool:
    """Mark a new DownloadJob queued, then create its suspended Job (False if it existed)."""
    namespace, name = _meta(body)
    status = model.parse_status(body)
    manifest = manifests.build_job(body, ctx.s3_settings, ctx.settings)
    if status.phase is None:
        patch = transition(status, model.Phase.QUEUED, "Submitted", "Waiting for a free slot.")
        patch.update(filesTotal=len(body["spec"]["fileIds"]), jobName=manifest["metadata"]["name"])
        ctx.cluster.patch_status(namespace, name, patch)
    return ctx.cluster.create_job(namespace, manifest)


def first_sight(body: dict[str, Any]) -> str:
    """
    What a DownloadJob seen for the first time calls for: ``cancel``, ``replay`` or
    ``enqueue``. An annotation set before the operator saw the resource (a DELETE
    right after the POST, say) wins: no update will ever announce it.
    """
    annotations = body["metadata"].get("annotations") or {}
    if model.ANNOTATION_CANCEL in annotations:
        return "cancel"
    if model.ANNOTATION_RETRY in annotations:
        return "replay"
    return "enqueue"


def arrive(ctx: Context, body: dict[str, Any]) -> str:
    """
    A DownloadJob seen for the first time: ``cancelled`` or ``ignored`` (a cancel
    that came first; no Job is ever created), ``replayed``, else queued with its
    suspended Job: ``created``, or ``existed`` when the Job was there already.
    """
    intent = first_sight(body)
    if intent == "cancel":
        return cancel(ctx, body)
    if intent == "replay" and replay(ctx, body) == "replayed":
        return "replayed"  # otherwise replay dropped the stray annotation: queue it
    return "created" if enqueue(ctx, body) else "existed"


def follow(ctx: Context, job: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Bring a DownloadJob in line with its Job; the body and the patch when it changed."""
    owner = (job["metadata"].get("labels") or {}).get(model.LABEL_JOB_NAME)
    namespace = job["metadata"].get("namespace")
    if not owner or not namespace:
        return None
    body = ctx.cluster.downloadjob(namespace, owner)
    if body is None:
        return None  # gone; garbage collection takes the Job
    current = model.parse_status(body)
    if current.job_name and current.job_name != job["metadata"]["name"]:
        return None  # a Job of an earlier replay
    patch = status_patch(job, current)
    if patch is None:
        return None
    ctx.cluster.patch_status(namespace, owner, patch)
    if patch.get("phase") == model.Phase.FAILED.value:
        ctx.cluster.patch_metadata(namespace, owner, {"labels": {model.LABEL_DEAD_LETTER: "true"}})
    failures = failures_of(job.get("status") or {})
    if "attempts" in patch and failures and patch["attempts"] > (current.attempts or 0):
        metrics.RETRIES.inc(patch["attempts"] - max(current.attempts or 1, 1))
    if patch.get("phase") in (model.Phase.COMPLETED.value, model.Phase.FAILED.value):
        started = current.started_at or model.parse_time(patch.get("startedAt"))
        if started is not None:
            elapsed = (model.utcnow() - started).total_seconds()
            metrics.DURATION.labels(patch["phase"]).observe(max(elapsed, 0))
    return body, patch


def cancel(ctx: Context, body: dict[str, Any]) -> str:
    """
    Stop a job on request: Cancelled first (so nothing moves it on), then the Job
    and its pod go, the partial upload is aborted and any bundle removed.
    """
    namespace, name = _meta(body)
    status = model.parse_status(body)
    if status.phase in (model.Phase.COMPLETED, model.Phase.FAILED):
        return "ignored"
    if status.phase is not model.Phase.CANCELLED:
        patch = transition(
            status, model.Phase.CANCELLED, "CancelRequested", "Cancelled on request."
        )
        patch["completedAt"] = model.utcnow().isoformat()
        ctx.cluster.patch_status(namespace, name, patch)
        metrics.CANCELLED.inc()
    if status.job_name:
        ctx.cluster.delete_job(namespace, status.job_name)
    key = bundle_key(ctx, body)
    bundles.abort_uploads(ctx.s3, ctx.s3_settings, key)
    bundles.remove_checkpoint(ctx.s3, ctx.s3_settings, key)
    bundles.remove_bundle(ctx.s3, ctx.s3_settings, key)
    return "cancelled"


def replay(ctx: Context, body: dict[str, Any]) -> str:
    """Put a dead letter back in the queue as a new attempt with a new Job."""
    namespace, name = _meta(body)
    status = model.parse_status(body)
    if status.phase is not model.Phase.FAILED:
        ctx.cluster.patch_metadata(namespace, name, {"annotations": {model.ANNOTATION_RETRY: None}})
        return "ignored"
    if status.job_name:
        ctx.cluster.delete_job(namespace, status.job_name)
    replays = (status.replays or 0) + 1
    patch = transition(status, model.Phase.QUEUED, "Replayed", f"Replay {replays} requested.")
    patch.update(
        replays=replays,
        jobName=manifests.job_name(name, replays),
        progress=0,
        attempts=0,
        filesDone=None,
        bytesDone=None,
        uploadId=None,
        partsUploaded=None,
        resumedFromPart=None,
        startedAt=None,
        completedAt=None,
        heartbeatAt=None,
        error=None,
        result=None,
    )
    ctx.cluster.patch_status(namespace, name, patch)
    ctx.cluster.patch_metadata(
        namespace,
        name,
        {
            "labels": {model.LABEL_DEAD_LETTER: None},
            "annotations": {model.ANNOTATION_RETRY: None},
        },
    )
    fresh = {**body, "status": {**(body.get("status") or {}), "replays": replays}}
    ctx.cluster.create_job(namespace, manifests.build_job(fresh, ctx.s3_settings, ctx.settings))
    return "replayed"


def cleanup(ctx: Context, body: dict[str, Any]) -> None:
    """The DownloadJob is being deleted: its Job, partial upload and bundle go too."""
    namespace, _ = _meta(body)
    status = model.parse_status(body)
    if status.job_name:
        ctx.cluster.delete_job(namespace, status.job_name)
    key = bundle_key(ctx, body)
    bundles.abort_uploads(ctx.s3, ctx.s3_settings, key)
    bundles.remove_checkpoint(ctx.s3, ctx.s3_settings, key)
    if not ctx.settings.keep_bundles:
        bundles.remove_bundle(ctx.s3, ctx.s3_settings, key)


def refuse(ctx: Context, body: dict[str, Any], job: dict[str, Any]) -> bool:
    """
    Fail a job whose worker pod the API server refuses to create (a pod that breaks
    the namespace's Pod Security level, say): the Job controller only retries and
    posts ``FailedCreate`` events until the Job's deadline, and no retry can succeed
    until someone changes the chart's values or the namespace. The Job goes; the
    DownloadJob is a dead letter with the API server's own words, to replay once fixed.
    """
    namespace, name = _meta(body)
    status = model.parse_status(body)
    job_status = job.get("status") or {}
    waiting = (
        status.phase is model.Phase.PROCESSING
        and not job["spec"].get("suspend")
        and attempts_of(job_status) == 0
        and not job_status.get("terminating")
    )
    if not waiting:
        return False
    why = ctx.cluster.pod_refusal(namespace, job)
    if why is None:
        return False
    message = f"The API server refuses the worker pod: {why}"
    patch = transition(status, model.Phase.FAILED, REFUSED, message)
    patch.update(
        error={"reason": REFUSED, "message": message}, completedAt=model.utcnow().isoformat()
    )
    ctx.cluster.patch_status(namespace, name, patch)
    ctx.cluster.patch_metadata(namespace, name, {"labels": {model.LABEL_DEAD_LETTER: "true"}})
    ctx.cluster.delete_job(namespace, job["metadata"]["name"])
    return True


def reconcile(ctx: Context, body: dict[str, Any]) -> list[str]:
    """
    The periodic check of one DownloadJob: expire it after its TTL when finished;
    otherwise repair drift from its Job (or recreate a lost Job) and catch stalls.
    """
    namespace, name = _meta(body)
    status = model.parse_status(body)
    now = model.utcnow()
    annotations = body["metadata"].get("annotations") or {}
    notes = []
    resumed = f"{name}.resumed-{status.resumed_from_part}"
    if status.resumed_from_part and resumed not in ctx.announced:
        message = f"A retried pod resumed the upload after part {status.resumed_from_part}."
        if ctx.cluster.post_event_once(body, resumed, "Resumed", message):
            notes.append("Resumed")
        ctx.announced.add(resumed)
    if status.phase is model.Phase.CANCELLED:
        # A worker that was still shutting down may have opened an upload after
        # the cancel handler looked: keep sweeping until the resource expires.
        # So may a checkpoint that was being written, whatever the upload's fate.
        key = bundle_key(ctx, body)
        bundles.remove_checkpoint(ctx.s3, ctx.s3_settings, key)
        if bundles.abort_uploads(ctx.s3, ctx.s3_settings, key):
            bundles.remove_bundle(ctx.s3, ctx.s3_settings, key)
    if status.phase is not None and status.phase.terminal:
        ttl = (
            ctx.settings.ttl_completed_seconds
            if status.phase is model.Phase.COMPLETED
            else ctx.settings.ttl_failed_seconds
        )
        ended = status.completed_at or model.parse_time(body["metadata"].get("creationTimestamp"))
        if ended is not None and (now - ended).total_seconds() >= ttl:
            ctx.cluster.delete_downloadjob(namespace, name)
            return [*notes, "Expired"]
        return notes
    if body["metadata"].get("deletionTimestamp"):
        return notes  # being deleted: the cleanup handler owns it (never recreate its Job)
    if model.ANNOTATION_CANCEL in annotations:
        # Level, not edge: kopf can fold an annotation that lands while the create
        # handler runs into the state it records as handled, and no update follows.
        return [*notes, "Cancelled"] if cancel(ctx, body) == "cancelled" else notes
    if status.job_name is None:
        return notes  # the create handler owns it
    job = ctx.cluster.job(namespace, status.job_name)
    if job is None:
        if status.result is not None:  # finished, and its Job already expired
            patch = transition(status, model.Phase.COMPLETED, "JobComplete", "Recovered.")
            patch.update(progress=100, completedAt=now.isoformat())
            ctx.cluster.patch_status(namespace, name, patch)
            return [*notes, "Recovered"]
        created = ctx.cluster.create_job(
            namespace, manifests.build_job(body, ctx.s3_settings, ctx.settings)
        )
        return [*notes, "JobRecreated"] if created else notes
    if follow(ctx, job) is not None:
        notes.append("DriftRepaired")
    if refuse(ctx, body, job):
        return [*notes, "PodRefused"]
    beat = status.heartbeat_at or status.started_at
    running = (job.get("status") or {}).get("active") and not job["spec"].get("suspend")
    stale = beat is not None and (now - beat).total_seconds() > ctx.settings.stall_seconds
    stalled = status.phase is model.Phase.PROCESSING and running and stale
    limit = now - datetime.timedelta(seconds=ctx.settings.stall_seconds)
    if stalled and ctx.cluster.delete_stalled_pods(namespace, status.job_name, limit):
        metrics.STALLS.inc()
        notes.append("Stalled")
    return notes
