"""
The kopf handlers: thin glue between events and :mod:`actions`.

Each handler runs one action in a thread (the ``kubernetes`` client blocks),
posts the event that tells the story, and wakes the admission queue when a
slot may have changed hands. Kopf keeps its own bookkeeping in annotations,
because the API server prunes status fields that the CRD does not declare.
"""

import asyncio
import concurrent.futures
import copy
import functools
import logging
from collections.abc import Callable
from typing import Any

import kopf
import kubernetes
import prometheus_client

from downloadjobs import kube, model, resource, s3
from downloadjobs.settings import S3Settings
from downloadjobs_operator import actions, admission, manifests, queue, sharing, status
from downloadjobs_operator.cluster import Cluster
from downloadjobs_operator.context import Context
from downloadjobs_operator.queue import AdmissionQueue
from downloadjobs_operator.settings import OperatorSettings

DOWNLOADJOBS = (model.GROUP, model.VERSION, model.PLURAL)
MANAGED_JOBS = {model.LABEL_MANAGED_BY: model.MANAGED_BY}
SETTINGS = OperatorSettings()  # timer intervals are fixed when the handlers register
#: Seconds a creation handler's thread waits for the event loop's admission decision.
ADMIT_DECISION_SECONDS = 30.0


@kopf.index(*DOWNLOADJOBS)
def downloadjobs_by_namespace(
    body: kopf.Body, namespace: str | None, name: str | None, **_: Any
) -> Any:
    """
    Every DownloadJob as last seen, for the admission passes (kopf drops the deleted),
    without what they never read and what makes a resource large: its file ids (up to
    a thousand) and the API server's field bookkeeping. The same copy is also there
    under ``(namespace, name)``, for :func:`follow_job` to find its Job's owner.
    """
    meta = {k: v for k, v in body.get("metadata", {}).items() if k != "managedFields"}
    spec = {k: v for k, v in body.get("spec", {}).items() if k != "fileIds"}
    slim = copy.deepcopy({**body, "metadata": meta, "spec": spec})
    keys = {namespace: slim, (namespace, name): slim}
    if not resource.is_finished(slim):
        keys[_unfinished(namespace)] = slim
    return keys


@kopf.index("batch", "v1", "jobs", labels=MANAGED_JOBS)
def jobs_by_namespace(body: kopf.Body, namespace: str | None, name: str | None, **_: Any) -> Any:
    """
    Every Job of ours as last seen, for the admission passes and the reconcile timer:
    what they read of it, under its namespace and under ``(namespace, name)``.
    """
    digest = admission.job_digest(dict(body))
    keys = {namespace: digest, (namespace, name): digest}
    if not admission.job_finished(digest):
        keys[_unfinished(namespace)] = digest
    return keys


def _unfinished(namespace: str | None) -> tuple[str | None, str]:
    """
    The key under which both indexes also hold what is not finished (no object is named
    ""): a decision at each job's creation reads only that, not every finished job a
    namespace keeps until it expires.
    """
    return (namespace, "")


def _view(
    downloadjobs: kopf.Index[Any, Any],
    jobs: kopf.Index[Any, Any],
    namespace: str,
    *,
    part: Callable[[str], Any] | None = None,
) -> Any:
    """
    A namespace's Jobs and DownloadJobs (all, or those under the key ``part`` gives),
    copied out of the indexes in the event loop.
    """
    key = part(namespace) if part else namespace
    return list(jobs.get(key, ())), list(downloadjobs.get(key, ()))


def _seen(index: kopf.Index[Any, Any], namespace: str, name: str) -> Any:
    """One DownloadJob or Job as the view holds it (never to be changed), or None."""
    return next(iter(index.get((namespace, name), ())), None)


def tune(settings: kopf.OperatorSettings) -> None:
    """kopf's settings for this operator: where it keeps its state, what it watches."""
    prefix = f"operator.{model.GROUP}"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=prefix)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=prefix)
    settings.persistence.finalizer = model.FINALIZER
    settings.posting.level = logging.WARNING  # kopf's per-handler chatter is no event
    settings.watching.server_timeout = 300
    # The API server sends only our Jobs. A handler's ``labels=`` filters on this side,
    # after kopf has parsed and indexed every event of every Job in the namespace:
    # other workloads' Jobs cost the operator (and the API server's watch) nothing now.
    selector = ",".join(f"{key}={value}" for key, value in MANAGED_JOBS.items())
    settings.watching.label_selectors["batch", "jobs"] = selector
    settings.peering.lifetime = SETTINGS.peering_lifetime


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    # Every handler runs its blocking client calls in the loop's default executor;
    # asyncio's default of cores+4 threads is too few for hundreds of jobs.
    loop = asyncio.get_running_loop()
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(SETTINGS.threads))
    # (an admission pass writes from threads of its own, beside the executor's)
    kube.load_config(connections=SETTINGS.threads + queue.WRITERS)
    tune(settings)
    s3_settings = S3Settings.from_environment()
    cluster = Cluster()
    memo.ctx = Context(cluster, s3.client(s3_settings), s3_settings, SETTINGS)
    memo.queue = AdmissionQueue(
        cluster,
        SETTINGS,
        functools.partial(_queued, memo.ctx),
        functools.partial(sharing.reuse, memo.ctx),
        # kopf runs no handler before the indexes hold the first listing of both.
        # (kopf passes each index as a keyword named after its function)
        functools.partial(_view, kwargs["downloadjobs_by_namespace"], kwargs["jobs_by_namespace"]),
        functools.partial(
            _view,
            kwargs["downloadjobs_by_namespace"],
            kwargs["jobs_by_namespace"],
            part=_unfinished,
        ),
    )
    memo.sightings = {}  # Job uid -> status.sighting() its DownloadJob was last brought to
    if SETTINGS.metrics_port:
        prometheus_client.start_http_server(SETTINGS.metrics_port)


def _queued(ctx: Context, body: dict[str, Any]) -> bool:
    """The admission queue's enqueue: whether the job now waits for a slot with its Job."""
    outcome = actions.enqueue(ctx, body)
    return outcome not in (actions.Outcome.REUSED, actions.Outcome.FOLLOWING)


def normal(body: kopf.Body, reason: str, message: str) -> None:
    """A Normal event on the DownloadJob (kopf.info would drop it below the posting level)."""
    kopf.event(body, type="Normal", reason=reason, message=message)


def _run(fn: Any, *args: Any) -> Any:
    return asyncio.to_thread(fn, *args)


#: The event each action outcome tells (reason, message); the others tell none.
_QUEUED = ("JobCreated", "Created its Job, suspended until admitted.")
OUTCOMES = {
    actions.Outcome.CREATED: _QUEUED,
    actions.Outcome.ADMITTED: ("JobCreated", "Created its Job, admitted at once: a slot was free."),
    # An admission pass may have created the Job a moment before this handler ran
    # (it creates the Job of any job it finds without one): the story is the same.
    actions.Outcome.EXISTED: _QUEUED,
    actions.Outcome.REUSED: ("Reused", "Completed at once with a bundle built before."),
    actions.Outcome.CANCELLED: ("Cancelled", "Cancelled on request; its Job was deleted."),
    actions.Outcome.IGNORED: ("CancelIgnored", "The job had finished already."),
    actions.Outcome.REPLAYED: ("Replayed", "Back in the queue with a new Job."),
}


def tell(body: kopf.Body, outcome: actions.Outcome) -> None:
    if outcome in OUTCOMES:
        normal(body, *OUTCOMES[outcome])


@kopf.on.create(*DOWNLOADJOBS)
async def create_job(body: kopf.Body, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    """
    Queue a new DownloadJob (suspended until admitted, or admitted at once when a slot is
    free and nobody older waits), unless a cancel or retry came first.
    """
    loop = asyncio.get_running_loop()

    async def decide(fresh: dict[str, Any], job: str) -> str | None:
        return memo.queue.admit_at_once(str(namespace), fresh, job)  # type: ignore[no-any-return]

    def admit(fresh: dict[str, Any], job: str) -> str | None:
        # Asked from the action's thread, decided in the event loop (where the view is).
        # Bounded: a loop that stops (the operator shutting down) never answers, and a
        # thread waiting for it would hold the process's exit. The handler then fails
        # and kopf retries it: the Job is created suspended, for a pass to admit.
        decision = asyncio.run_coroutine_threadsafe(decide(fresh, job), loop)
        return decision.result(timeout=ADMIT_DECISION_SECONDS)

    outcome = await _run(actions.arrive, memo.ctx, dict(body), admit)
    tell(body, outcome)
    if outcome is actions.Outcome.CREATED:
        name = body["metadata"]["name"]
        job = manifests.job_name(name, resource.replays(dict(body)))
        memo.queue.created(str(namespace), name, job)
    await memo.queue.poke(str(namespace))


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED_JOBS)
async def follow_job(
    event: kopf.RawEvent,
    body: kopf.Body,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **kwargs: Any,
) -> None:
    """
    Mirror a Job's state onto its DownloadJob, with an event on each transition.
    Only a Job whose :func:`status.sighting` changed costs an admission pass and a
    look at its DownloadJob, as the view shows it (a read only when the view is behind):
    under load, most events are the Job controller's chatter.
    """
    meta = body.get("metadata", {})
    namespace, uid = meta.get("namespace"), meta.get("uid")
    if event["type"] == "DELETED":
        memo.sightings.pop(uid, None)
    else:
        seen = status.sighting(dict(body))
        if memo.sightings.get(uid) == seen:
            return
        owner = (meta.get("labels") or {}).get(model.LABEL_JOB_NAME)
        index = kwargs["downloadjobs_by_namespace"]
        view = _seen(index, namespace, owner) if owner else None
        changed = await _run(actions.follow, memo.ctx, dict(body), view)
        memo.sightings[uid] = seen  # not before: a failed follow is tried on the next event
        if changed is not None:
            owner, patch = changed
            if "phase" in patch:
                phase = patch["phase"]
                (cond,) = [c for c in patch["conditions"] if c["status"] == "True"]
                logger.info("DownloadJob %s: %s", owner["metadata"]["name"], cond["message"])
                kind = "Warning" if phase == model.Phase.FAILED.value else "Normal"
                kopf.event(kopf.Body(owner), type=kind, reason=phase, message=cond["message"])
    if namespace:
        await memo.queue.poke(namespace)


@kopf.on.resume(*DOWNLOADJOBS, annotations={model.ANNOTATION_CANCEL: kopf.PRESENT})
@kopf.on.update(*DOWNLOADJOBS, annotations={model.ANNOTATION_CANCEL: kopf.PRESENT})
async def cancel(body: kopf.Body, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    """``DELETE /v1/download/jobs/{id}`` or ``kubectl annotate … cancel-requested=…``."""
    tell(body, await _run(actions.cancel, memo.ctx, dict(body)))
    await memo.queue.poke(str(namespace))


@kopf.on.resume(*DOWNLOADJOBS, annotations={model.ANNOTATION_RETRY: kopf.PRESENT})
@kopf.on.update(*DOWNLOADJOBS, annotations={model.ANNOTATION_RETRY: kopf.PRESENT})
async def replay(body: kopf.Body, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    """``POST /v1/download/jobs/{id}/retry`` or ``kubectl annotate … retry-requested=…``."""
    tell(body, await _run(actions.replay, memo.ctx, dict(body)))
    await memo.queue.poke(str(namespace))


@kopf.on.delete(*DOWNLOADJOBS)
async def cleanup(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Deleted (kubectl, or the TTL): stop the Job, abort the upload, remove the bundle."""
    await _run(actions.cleanup, memo.ctx, dict(body))


@kopf.timer(*DOWNLOADJOBS, interval=SETTINGS.reconcile_interval, initial_delay=1.0)
async def reconcile(body: kopf.Body, namespace: str | None, memo: kopf.Memo, **kwargs: Any) -> None:
    """Expire finished jobs; repair drift and stalls of the others; admit if slots are free."""
    job_name = resource.job_name(dict(body))
    jobs = kwargs["jobs_by_namespace"]
    seen = _seen(jobs, str(namespace), job_name) if job_name else None
    try:
        notes = await _run(actions.reconcile, memo.ctx, dict(body), seen)
    except kubernetes.client.exceptions.ApiException as exc:
        if exc.status != 404:
            raise
        return  # deleted meanwhile: nothing left to reconcile
    for note in notes:
        if note is actions.Note.STALLED:
            kopf.event(
                body,
                type="Warning",
                reason="Stalled",
                message="No heartbeat; its pod was deleted to retry.",
            )
        elif note == actions.Note.POD_REFUSED:
            kopf.event(
                body,
                type="Warning",
                reason=actions.Note.POD_REFUSED,
                message="The API server refuses its worker pod: status.error says why.",
            )
        elif note not in (actions.Note.EXPIRED, actions.Note.RESUMED):  # Resumed: posted already
            normal(body, note, f"Periodic reconcile: {note}.")
    await memo.queue.poke(str(namespace), unless_fresher_than=2.0)
