"""
What the operator does, one function per intent, on plain dicts.

Each function is safe to repeat: a crash at any point and a retry (kopf retries
unfinished handlers, the reconcile timer repairs the rest) reach the same end.
They return what happened, for the handlers to turn into events.
"""

import datetime
import enum
import logging
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from downloadjobs import model, resource
from downloadjobs_operator import bundles, manifests, metrics, sharing
from downloadjobs_operator.context import Context
from downloadjobs_operator.status import (
    attempts_of,
    failures_of,
    phase_of_job,
    status_patch,
    transition,
)

#: ``error.reason`` of a job whose worker pod the API server refuses to create.
REFUSED = "PodRefused"


log = logging.getLogger(__name__)


class Outcome(enum.StrEnum):
    """What an action did, for the handlers to tell in an event."""

    CREATED = "created"  # queued, with its suspended Job
    ADMITTED = "admitted"  # its Job created unsuspended: a slot was free, nobody older waits
    REUSED = "reused"  # completed at once with the bundle of an earlier job
    FOLLOWING = "following"  # waits for the job that builds the same bundle now
    EXISTED = "existed"  # queued already (a handler repeated after a crash)
    CANCELLED = "cancelled"
    IGNORED = "ignored"  # a cancel or replay that came too late or too early
    REPLAYED = "replayed"


class Intent(enum.StrEnum):
    """What a DownloadJob seen for the first time calls for."""

    ENQUEUE = "enqueue"
    CANCEL = "cancel"
    REPLAY = "replay"


class Note(enum.StrEnum):
    """What one reconcile of a DownloadJob found and did (the event reasons)."""

    RESUMED = "Resumed"
    EXPIRED = "Expired"
    CANCELLED = "Cancelled"
    RECOVERED = "Recovered"
    REUSED = "Reused"  # a follower completed with its leader's bundle
    RELEASED = "Released"  # a follower whose leader stopped builds for itself
    FAILED = "Failed"  # a follower failed with its leader
    JOB_RECREATED = "JobRecreated"
    DRIFT_REPAIRED = "DriftRepaired"
    STALLED = "Stalled"
    POD_REFUSED = "PodRefused"  # the API server refuses its worker pod: failed


def _meta(body: dict[str, Any]) -> tuple[str, str]:
    return body["metadata"]["namespace"], body["metadata"]["name"]


def bundle_key(ctx: Context, body: dict[str, Any]) -> str:
    namespace, name = _meta(body)
    return ctx.s3_settings.bundle_key(namespace, name)


def _reusable(ctx: Context, body: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """
    The new job's content key, and a completed job whose bundle it can have. S3 away:
    neither (the job builds its own bundle; reuse is a saving, never a dependency).
    """
    file_ids = resource.spec(body).get("fileIds") or []
    try:
        key = bundles.content_key(
            ctx.s3, ctx.s3_settings, file_ids, ctx.settings.worker_compression
        )
        return key, sharing.completed_twin(ctx, body, key)
    except (BotoCoreError, ClientError) as exc:
        log.warning("no bundle reuse for %s: S3 did not answer (%s)", _meta(body)[1], exc)
        return None, None


#: Asked before a new job's Job is created: its time of admission when the Job may be
#: created unsuspended (see :meth:`AdmissionQueue.admit_at_once`), else None.
Admit = Callable[[dict[str, Any], str], str | None]


def enqueue(ctx: Context, body: dict[str, Any], admit: Admit | None = None) -> Outcome:
    """
    A new DownloadJob: completed at once when a bundle of the same files is there
    already (``reused``), else queued with its suspended Job (``created``, or
    ``existed`` when the Job was there already), or with its Job unsuspended when
    ``admit`` says a slot is free for it (``admitted``).

    The first write carries the resource's version: when the create handler and an
    admission pass act on the same new job at once, one of them finds the job changed
    and decides again from what the other wrote.
    """
    namespace, name = _meta(body)
    for _ in range(3):
        status = model.parse_status(body)
        if status.phase is not None:
            break
        key, twin = _reusable(ctx, body) if ctx.settings.reuse_bundles else (None, None)
        metadata: dict[str, Any] = {"labels": {model.LABEL_CONTENT_KEY: key}} if key else {}
        if twin is not None:
            metadata["annotations"] = {model.ANNOTATION_BUNDLE_OF: sharing.origin(twin)}
        version = body["metadata"].get("resourceVersion")
        if metadata and not ctx.cluster.patch_metadata(namespace, name, metadata, version=version):
            fresh = ctx.cluster.downloadjob(namespace, name)
            if fresh is None:
                return Outcome.IGNORED  # deleted meanwhile
            body = fresh
            continue
        if twin is not None:
            sharing.complete_with(ctx, body, twin)
            return Outcome.REUSED
        if metadata:  # what admission reads of it (its content key), as it is now
            body = {
                **body,
                "metadata": {
                    **body["metadata"],
                    "labels": {**(body["metadata"].get("labels") or {}), **metadata["labels"]},
                },
            }
        patch = transition(status, model.Phase.QUEUED, "Submitted", "Waiting for a free slot.")
        files = len(resource.spec(body).get("fileIds") or [])
        job = manifests.job_name(name, resource.replays(body))
        patch.update(resource.status_patch(files_total=files, job_name=job))
        ctx.cluster.patch_status(namespace, name, patch)
        break
    status = model.parse_status(body)
    if status.phase is not None and status.phase.terminal:
        reused = status.result is not None and status.result.reused
        return Outcome.REUSED if reused else Outcome.EXISTED  # a finished job gets no Job
    if sharing.is_follower(body):
        return Outcome.FOLLOWING  # its leader's Job builds the bundle
    manifest = manifests.build_job(body, ctx.s3_settings, ctx.settings)
    job = manifest["metadata"]["name"]
    admitted_at = admit(body, job) if admit is not None and not status.phase else None
    if admitted_at is None:
        return Outcome.CREATED if ctx.cluster.create_job(namespace, manifest) else Outcome.EXISTED
    manifest["spec"]["suspend"] = False
    annotations = manifest["metadata"].setdefault("annotations", {})
    annotations[model.ANNOTATION_ADMITTED_AT] = admitted_at
    if ctx.cluster.create_job(namespace, manifest):
        return Outcome.ADMITTED
    # There already (a pass created it, or this handler before a crash): the slot is its.
    existing = ctx.cluster.job(namespace, job)
    if existing is not None and existing.get("spec", {}).get("suspend"):
        ctx.cluster.unsuspend_job(namespace, job, admitted_at)
    return Outcome.EXISTED


def first_sight(body: dict[str, Any]) -> Intent:
    """
    What a DownloadJob seen for the first time calls for: ``cancel``, ``replay`` or
    ``enqueue``. An annotation set before the operator saw the resource (a DELETE
    right after the POST, say) wins: no update will ever announce it.
    """
    annotations = body["metadata"].get("annotations") or {}
    if model.ANNOTATION_CANCEL in annotations:
        return Intent.CANCEL
    if model.ANNOTATION_RETRY in annotations:
        return Intent.REPLAY
    return Intent.ENQUEUE


def arrive(ctx: Context, body: dict[str, Any], admit: Admit | None = None) -> Outcome:
    """
    A DownloadJob seen for the first time: ``cancelled`` or ``ignored`` (a cancel
    that came first; no Job is ever created), ``replayed``, else queued with its
    suspended Job: ``created``, or ``existed`` when the Job was there already.
    """
    intent = first_sight(body)
    if intent is Intent.CANCEL:
        return cancel(ctx, body)
    if intent is Intent.REPLAY and replay(ctx, body) is Outcome.REPLAYED:
        return Outcome.REPLAYED  # otherwise replay dropped the stray annotation: queue it
    return enqueue(ctx, body, admit)


def follow(
    ctx: Context, job: dict[str, Any], seen: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """
    Bring a DownloadJob in line with its Job; the body and the patch when it changed.

    ``seen`` is the DownloadJob as a watch last showed it (kopf's view), when there is
    one: the patch is decided from it and written only if the resource is still at
    that resourceVersion, so a view a moment behind costs a read then, not every time
    (most of a Job's sightings found their DownloadJob unchanged since the last).
    """
    owner = (job["metadata"].get("labels") or {}).get(model.LABEL_JOB_NAME)
    namespace = job["metadata"].get("namespace")
    if not owner or not namespace:
        return None
    build = phase_of_job(job)
    if seen is not None and build.terminal and sharing.content_key(seen):
        # Others may wait for this build with its result, which a view can lack even
        # when it shows the job ended (a cancelled leader's worker writes it after the
        # cancel): read as it is now.
        seen = None
    body = seen if seen is not None else ctx.cluster.downloadjob(namespace, owner)
    read = seen is None  # the body as the API server answers now, not a view's copy
    patch = None
    for _ in range(3):
        if body is None:
            return None  # gone; garbage collection takes the Job
        current = model.parse_status(body)
        if current.job_name and current.job_name != job["metadata"]["name"]:
            if read:
                return None  # a Job of an earlier replay
            # (or of a replay the view does not show yet)
        else:
            patch = status_patch(job, current)
            if patch is None:
                break
            version = body["metadata"].get("resourceVersion")
            if ctx.cluster.patch_status(namespace, owner, patch, version=version):
                break
        # Changed meanwhile, or seen in a view that may be behind: decide again.
        body, read = ctx.cluster.downloadjob(namespace, owner), True
    else:
        raise RuntimeError(f"DownloadJob {owner} kept changing under its Job's follow")
    if build.terminal:  # whoever waits for this build ends with it (a cancelled leader too)
        # Written at the version it was read, or terminal already: the copy is current.
        merged = {**body, "status": {**resource.status(body), **(patch or {})}}
        sharing.settle(ctx, merged, build)
    if patch is None:
        return None
    if patch.get("phase") == model.Phase.FAILED.value:
        ctx.cluster.patch_metadata(namespace, owner, {"labels": {model.LABEL_DEAD_LETTER: "true"}})
    failures = failures_of(job.get("status") or {})
    if "attempts" in patch and failures and patch["attempts"] > (current.attempts or 0):
        metrics.RETRIES.inc(patch["attempts"] - max(current.attempts or 1, 1))
    if patch.get("phase") in (model.Phase.COMPLETED.value, model.Phase.FAILED.value):
        started = current.started_at or resource.started_at({"status": patch})
        if started is not None:
            elapsed = (model.utcnow() - started).total_seconds()
            metrics.DURATION.labels(patch["phase"]).observe(max(elapsed, 0))
    return body, patch


def cancel(ctx: Context, body: dict[str, Any]) -> Outcome:
    """
    Stop a job on request: Cancelled first (so nothing moves it on), then the Job
    and its pod go, the partial upload is aborted and any bundle removed.
    """
    namespace, name = _meta(body)
    status = model.parse_status(body)
    if status.phase in (model.Phase.COMPLETED, model.Phase.FAILED):
        return Outcome.IGNORED
    if status.phase is not model.Phase.CANCELLED:
        patch = transition(
            status, model.Phase.CANCELLED, "CancelRequested", "Cancelled on request."
        )
        patch.update(resource.status_patch(completed_at=model.utcnow()))
        ctx.cluster.patch_status(namespace, name, patch)
        metrics.CANCELLED.inc()
    if sharing.followers(ctx, body):
        return Outcome.CANCELLED  # others wait for its build: the Job goes on for them
    if status.job_name:
        ctx.cluster.delete_job(namespace, status.job_name)
    key = bundle_key(ctx, body)
    bundles.abort_uploads(ctx.s3, ctx.s3_settings, key)
    bundles.remove_checkpoint(ctx.s3, ctx.s3_settings, key)
    bundles.remove_bundle(ctx.s3, ctx.s3_settings, key)
    return Outcome.CANCELLED


def replay(ctx: Context, body: dict[str, Any]) -> Outcome:
    """Put a dead letter back in the queue as a new attempt with a new Job."""
    namespace, name = _meta(body)
    status = model.parse_status(body)
    if status.phase is not model.Phase.FAILED:
        ctx.cluster.patch_metadata(namespace, name, {"annotations": {model.ANNOTATION_RETRY: None}})
        return Outcome.IGNORED
    if status.job_name:
        ctx.cluster.delete_job(namespace, status.job_name)
    replays = (status.replays or 0) + 1
    patch = transition(status, model.Phase.QUEUED, "Replayed", f"Replay {replays} requested.")
    patch.update(
        resource.status_patch(
            replays=replays,
            job_name=manifests.job_name(name, replays),
            progress=0,
            attempts=0,
            files_done=None,
            bytes_done=None,
            upload_id=None,
            parts_uploaded=None,
            resumed_from_part=None,
            started_at=None,
            completed_at=None,
            heartbeat_at=None,
            error=None,
            result=None,
        )
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
    fresh = {**body, "status": {**resource.status(body), **resource.status_patch(replays=replays)}}
    ctx.cluster.create_job(namespace, manifests.build_job(fresh, ctx.s3_settings, ctx.settings))
    return Outcome.REPLAYED


def cleanup(ctx: Context, body: dict[str, Any]) -> None:
    """
    The DownloadJob is being deleted: its Job and partial upload go too, and the
    bundle its answers point at, unless another job still points at it.
    """
    namespace, _ = _meta(body)
    status = model.parse_status(body)
    if status.job_name:
        ctx.cluster.delete_job(namespace, status.job_name)
    key = bundle_key(ctx, body)
    bundles.abort_uploads(ctx.s3, ctx.s3_settings, key)
    bundles.remove_checkpoint(ctx.s3, ctx.s3_settings, key)
    if ctx.settings.keep_bundles:
        return
    for bundle in {key, sharing.shared_bundle(ctx, body)}:
        if not _still_shared(ctx, body, bundle):
            bundles.remove_bundle(ctx.s3, ctx.s3_settings, bundle)


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
    error = model.JobError(reason=REFUSED, message=message)
    patch.update(resource.status_patch(error=error, completed_at=model.utcnow()))
    ctx.cluster.patch_status(namespace, name, patch)
    ctx.cluster.patch_metadata(namespace, name, {"labels": {model.LABEL_DEAD_LETTER: "true"}})
    ctx.cluster.delete_job(namespace, job["metadata"]["name"])
    return True


def _still_shared(ctx: Context, body: dict[str, Any], bundle: str) -> bool:
    """Whether a DownloadJob other than ``body``, not being deleted, points at ``bundle``."""
    namespace, name = _meta(body)
    key = (body["metadata"].get("labels") or {}).get(model.LABEL_CONTENT_KEY)
    if not key:
        return False  # never shared: only jobs with the same content key share a bundle
    return any(
        other["metadata"]["name"] != name
        and not other["metadata"].get("deletionTimestamp")
        and sharing.shared_bundle(ctx, other) == bundle
        for other in ctx.cluster.downloadjobs(namespace, {model.LABEL_CONTENT_KEY: key})
    )


def reconcile(ctx: Context, body: dict[str, Any], seen: dict[str, Any] | None = None) -> list[Note]:
    """
    The periodic check of one DownloadJob: expire it after its TTL when finished;
    otherwise repair drift from its Job (or recreate a lost Job) and catch stalls.
    ``seen`` is its Job as a watch last showed it (kopf's view), when there is one:
    read from the API server only when the view has none, before recreating it.
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
            notes.append(Note.RESUMED)
        ctx.announced.add(resumed)
    if status.phase is model.Phase.CANCELLED and not sharing.followers(ctx, body):
        # A worker that was still shutting down may have opened an upload after
        # the cancel handler looked: keep sweeping until the resource expires.
        # So may a checkpoint that was being written, whatever the upload's fate.
        # (Not while others wait for its build: then its Job goes on.)
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
            return [*notes, Note.EXPIRED]
        return notes
    if body["metadata"].get("deletionTimestamp"):
        return notes  # being deleted: the cleanup handler owns it (never recreate its Job)
    if model.ANNOTATION_CANCEL in annotations:
        # Level, not edge: kopf can fold an annotation that lands while the create
        # handler runs into the state it records as handled, and no update follows.
        return [*notes, Note.CANCELLED] if cancel(ctx, body) is Outcome.CANCELLED else notes
    if sharing.is_follower(body):
        outcome = sharing.check(ctx, body)
        return [*notes, Note(outcome)] if outcome else notes
    if status.job_name is None:
        return notes  # the create handler owns it
    mine = seen is not None and seen["metadata"].get("name") == status.job_name
    born = resource.created_at(body)
    young = born is not None and (now - born).total_seconds() < ctx.settings.reconcile_interval
    if not mine and young:
        # Its creation handler created its Job a moment ago, or is about to, and a view
        # that lags under load does not show it yet: asking the API server here cost a
        # GET for three new jobs in four at 20/s (benchmarks/README.md). The next
        # reconcile looks again; kopf retries a creation handler that failed.
        return notes
    job = seen if mine else ctx.cluster.job(namespace, status.job_name)
    if job is None:
        if status.result is not None:  # finished, and its Job already expired
            patch = transition(status, model.Phase.COMPLETED, "JobComplete", "Recovered.")
            patch.update(resource.status_patch(progress=100, completed_at=now))
            ctx.cluster.patch_status(namespace, name, patch)
            return [*notes, Note.RECOVERED]
        created = ctx.cluster.create_job(
            namespace, manifests.build_job(body, ctx.s3_settings, ctx.settings)
        )
        return [*notes, Note.JOB_RECREATED] if created else notes
    if follow(ctx, job, body) is not None:  # kopf's copy: read again only if it moved
        notes.append(Note.DRIFT_REPAIRED)
    if refuse(ctx, body, job):
        return [*notes, Note.POD_REFUSED]
    beat = status.heartbeat_at or status.started_at
    running = (job.get("status") or {}).get("active") and not job["spec"].get("suspend")
    stale = beat is not None and (now - beat).total_seconds() > ctx.settings.stall_seconds
    stalled = status.phase is model.Phase.PROCESSING and running and stale
    limit = now - datetime.timedelta(seconds=ctx.settings.stall_seconds)
    if stalled and ctx.cluster.delete_stalled_pods(namespace, status.job_name, limit):
        metrics.STALLS.inc()
        notes.append(Note.STALLED)
    return notes
