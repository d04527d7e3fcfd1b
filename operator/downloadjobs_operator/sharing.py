"""
One bundle for the same files: a new job reuses a completed job's bundle, or follows
the one job that builds it now.

Every job whose sources the operator has looked at carries the label
``downloadjobs.dev/content-key``. A job that shares another's bundle carries the
annotation ``downloadjobs.dev/bundle-of`` naming the job that built (or builds) it:
the operator writes both, a worker can write neither, so what a job's answers point at
never comes from a status. A follower has no Job of its own; it waits, not counted
against the running caps, and ends with its leader: completed with its result, failed
with its error, or, when the leader's build stops without a result, released to
build for itself.
"""

import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from downloadjobs import model, resource
from downloadjobs_operator import admission, bundles, manifests, metrics
from downloadjobs_operator.cluster import Cluster
from downloadjobs_operator.context import Context
from downloadjobs_operator.status import transition

log = logging.getLogger(__name__)


def _meta(body: dict[str, Any]) -> tuple[str, str]:
    return body["metadata"]["namespace"], body["metadata"]["name"]


def content_key(body: dict[str, Any]) -> str | None:
    return (body["metadata"].get("labels") or {}).get(model.LABEL_CONTENT_KEY)


def origin(body: dict[str, Any]) -> str:
    """The job whose bundle ``body``'s answers point at: another one's, or its own."""
    return resource.annotations(body).get(model.ANNOTATION_BUNDLE_OF) or body["metadata"]["name"]


def shared_bundle(ctx: Context, body: dict[str, Any]) -> str:
    namespace, _ = _meta(body)
    return ctx.s3_settings.bundle_key(namespace, origin(body))


def is_follower(body: dict[str, Any]) -> bool:
    """Waiting for another job's build (the annotation, and not finished)."""
    shares = model.ANNOTATION_BUNDLE_OF in resource.annotations(body)
    return shares and not resource.is_finished(body)


def _alive(body: dict[str, Any]) -> bool:
    return not body["metadata"].get("deletionTimestamp")


def built_key(body: dict[str, Any]) -> str | None:
    """
    The content key of the bundle a completed job built or reused, if it may serve
    others (alive, its result of that key): read from the raw body, as an admission
    pass asks it of every job it lists. The bundle's presence is for the caller to check.
    """
    key = content_key(body)
    result = resource.status(body).get("result") or {}
    if (
        key
        and resource.phase(body) is model.Phase.COMPLETED
        and result.get("contentKey") == key
        and _alive(body)
    ):
        return key
    return None


def reuse(ctx: Context, body: dict[str, Any], twin: dict[str, Any], job: str) -> bool:
    """
    Complete a queued ``body`` with ``twin``'s bundle, if it is still there, and delete
    its suspended ``job``: for a job that arrived while its twin was still building and
    found neither a bundle to reuse nor, by the next admission pass, a build to follow.
    S3 away: False, and the job builds its own (a saving, never a dependency).
    """
    try:
        if not bundles.bundle_exists(ctx.s3, ctx.s3_settings, shared_bundle(ctx, twin)):
            return False
    except (BotoCoreError, ClientError) as exc:
        log.warning("no bundle reuse for %s: S3 did not answer (%s)", _meta(body)[1], exc)
        return False
    namespace, _ = _meta(body)
    complete_with(ctx, body, twin)
    ctx.cluster.delete_job(namespace, job)
    return True


def completed_twin(ctx: Context, body: dict[str, Any], key: str) -> dict[str, Any] | None:
    """A completed job, not being deleted, whose bundle holds what ``body`` asks for."""
    namespace, name = _meta(body)
    for other in ctx.cluster.downloadjobs(namespace, {model.LABEL_CONTENT_KEY: key}):
        result = model.parse_status(other).result
        if (
            other["metadata"]["name"] != name
            and resource.phase(other) is model.Phase.COMPLETED
            and result is not None
            and result.content_key == key
            and _alive(other)
            and bundles.bundle_exists(ctx.s3, ctx.s3_settings, shared_bundle(ctx, other))
        ):
            return other
    return None


def complete_with(ctx: Context, body: dict[str, Any], twin: dict[str, Any]) -> None:
    """Complete ``body`` with ``twin``'s bundle: its result, marked reused, no Job."""
    namespace, name = _meta(body)
    theirs = model.parse_status(twin)
    if theirs.result is None:
        raise ValueError(f"{twin['metadata']['name']} has no result to share")
    now = model.utcnow()
    message = f"Completed with the bundle of {origin(twin)}, built for the same files."
    patch = transition(model.parse_status(body), model.Phase.COMPLETED, "Reused", message, now)
    patch.update(
        resource.status_patch(
            result=theirs.result.model_copy(update={"reused": True}),
            progress=100,
            files_total=theirs.files_total,
            files_done=theirs.files_total,
            bytes_total=theirs.bytes_total,
            bytes_done=theirs.bytes_total,
            queue_position=None,
            started_at=model.parse_status(body).started_at or now,
            completed_at=now,
        )
    )
    ctx.cluster.patch_status(namespace, name, patch)
    metrics.REUSED.inc()


def _fail_with(ctx: Context, body: dict[str, Any], leader: dict[str, Any]) -> None:
    namespace, name = _meta(body)
    error = model.parse_status(leader).error or model.JobError(
        reason="SharedBuildFailed", message="the job building this bundle failed"
    )
    message = f"The build shared with {leader['metadata']['name']} failed: {error.message}"
    patch = transition(model.parse_status(body), model.Phase.FAILED, error.reason, message)
    patch.update(resource.status_patch(error=error, completed_at=model.utcnow()))
    ctx.cluster.patch_status(namespace, name, patch)
    ctx.cluster.patch_metadata(namespace, name, {"labels": {model.LABEL_DEAD_LETTER: "true"}})


def followers(ctx: Context, leader: dict[str, Any]) -> list[dict[str, Any]]:
    """The jobs waiting for ``leader``'s build."""
    namespace, name = _meta(leader)
    key = content_key(leader)
    if not key:
        return []
    return [
        other
        for other in ctx.cluster.downloadjobs(namespace, {model.LABEL_CONTENT_KEY: key})
        if is_follower(other) and origin(other) == name and _alive(other)
    ]


def follow(cluster: Cluster, body: dict[str, Any], leader: str, job: str | None) -> None:
    """Make ``body`` wait for ``leader``'s build; its own suspended Job goes."""
    namespace, name = _meta(body)
    cluster.patch_metadata(namespace, name, {"annotations": {model.ANNOTATION_BUNDLE_OF: leader}})
    message = f"Waits for {leader}, which builds the same bundle."
    patch = transition(model.parse_status(body), model.Phase.QUEUED, "SharedBuild", message)
    patch.update(resource.status_patch(queue_position=None, job_name=None))
    cluster.patch_status(namespace, name, patch)
    if job:
        cluster.delete_job(namespace, job)


def release(ctx: Context, body: dict[str, Any]) -> None:
    """A follower whose leader stopped without a result builds for itself."""
    namespace, name = _meta(body)
    ctx.cluster.patch_metadata(namespace, name, {"annotations": {model.ANNOTATION_BUNDLE_OF: None}})
    job = manifests.job_name(name, resource.replays(body))
    message = "The shared build stopped; waiting for a free slot to build its own."
    patch = transition(model.parse_status(body), model.Phase.QUEUED, "Released", message)
    patch.update(resource.status_patch(job_name=job))
    ctx.cluster.patch_status(namespace, name, patch)
    fresh = {**body, "metadata": {**body["metadata"], "annotations": {}}}
    ctx.cluster.create_job(namespace, manifests.build_job(fresh, ctx.s3_settings, ctx.settings))


def settle(ctx: Context, leader: dict[str, Any], build: model.Phase) -> int:
    """
    The leader's Job ended (``build``): end its followers with it. Completed with a
    result: each completes with that bundle; failed: each fails with its error.
    """
    waiting = followers(ctx, leader)
    result = model.parse_status(leader).result
    for body in waiting:
        if build is model.Phase.COMPLETED and result is not None:
            complete_with(ctx, body, leader)
        elif build is model.Phase.FAILED:
            _fail_with(ctx, body, leader)
    return len(waiting)


def check(ctx: Context, body: dict[str, Any]) -> str | None:
    """
    The periodic check of a follower against its leader (level, not edge: the
    leader may have ended while no handler listened). What happened, or None.
    """
    namespace, _ = _meta(body)
    leader = ctx.cluster.downloadjob(namespace, origin(body))
    status = model.parse_status(leader) if leader is not None else None
    if leader is None or status is None or not _alive(leader):
        release(ctx, body)
        return "Released"
    if status.result is not None and status.phase in (model.Phase.COMPLETED, model.Phase.CANCELLED):
        complete_with(ctx, body, leader)
        return "Reused"
    if status.phase is model.Phase.FAILED:
        _fail_with(ctx, body, leader)
        return "Failed"
    if status.phase is model.Phase.CANCELLED:
        job = ctx.cluster.job(namespace, status.job_name) if status.job_name else None
        if job is None or not admission.job_running(job):
            release(ctx, body)  # the leader's build stopped without a result
            return "Released"
    return None
