"""
The admission pass: read the namespace, plan (see :mod:`admission`), apply.

Passes of one namespace never overlap (a lock), and a request that arrives
during a pass makes it run once more, so no wake-up is lost. A pass reads the
namespace from a view that kopf's watches keep (its indexes, see :mod:`handlers`),
not by listing every DownloadJob and Job again: at 10 new jobs a second those two
lists took a pass 1 to 6 s. A view can be a moment behind the pass's own writes, so
the pass remembers them (``expectations``, as kube-controller-manager's controllers
do) until the view shows them: a Job it unsuspended counts as running, a job it made
follow another's build or complete with one is not queued again. One operator so
never admits past the cap; kopf's peering keeps a second replica paused.
"""

import asyncio
import collections
import concurrent.futures
import dataclasses
import datetime
import logging
import time
from collections.abc import Callable
from typing import Any

from downloadjobs import model, resource
from downloadjobs_operator import admission, manifests, metrics, sharing
from downloadjobs_operator.cluster import Cluster
from downloadjobs_operator.settings import OperatorSettings

log = logging.getLogger(__name__)

#: Writes of one admission pass in flight at once.
WRITERS = 16
#: Seconds a new DownloadJob's creation handler has to create its Job before an
#: admission pass does it instead (after a crash of the handler, say).
ENQUEUE_GRACE_SECONDS = 30
#: Seconds a pass's own write is taken as done while the view does not show it yet:
#: far longer than a watch lags, short enough that a write lost to a conflict is
#: decided again soon.
EXPECTATION_SECONDS = 30.0

#: A namespace's Jobs and DownloadJobs as the view holds them at the pass's start.
Snapshot = tuple[list[dict[str, Any]], list[dict[str, Any]]]


@dataclasses.dataclass
class _NamespaceState:
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    dirty: bool = False
    last: float = 0.0
    #: Job name -> when this operator unsuspended it.
    admitted: dict[str, float] = dataclasses.field(default_factory=dict)
    #: Job name -> its DownloadJob's name, and when a handler of this operator created it.
    created: dict[str, tuple[str, float]] = dataclasses.field(default_factory=dict)
    #: DownloadJob name -> when a pass made it follow a build or complete with one.
    settled: dict[str, float] = dataclasses.field(default_factory=dict)
    #: Job name -> its DownloadJob's name, and when a handler was told it may create it
    #: unsuspended (:meth:`AdmissionQueue.admit_at_once`).
    direct: dict[str, tuple[str, float]] = dataclasses.field(default_factory=dict)
    #: DownloadJob name -> the content key its creation handler labelled it with, and
    #: when: the view shows labels a moment late, and two handlers for the same files
    #: at once must each see the other's.
    keys: dict[str, tuple[str, float]] = dataclasses.field(default_factory=dict)


class AdmissionQueue:
    """
    ``enqueue`` creates a DownloadJob's suspended Job (idempotently), or answers False
    when the job needs none (it completed with a bundle built before): a pass that
    finds a job without one creates it there and then, so the queue's order never
    depends on which creation handler happened to run first, after a restart say.
    """

    def __init__(
        self,
        cluster: Cluster,
        settings: OperatorSettings,
        enqueue: Callable[[dict[str, Any]], bool],
        reuse: Callable[[dict[str, Any], dict[str, Any], str], bool] | None = None,
        view: Callable[[str], Snapshot] | None = None,
        unfinished_view: Callable[[str], Snapshot] | None = None,
    ) -> None:
        self._cluster = cluster
        self._settings = settings
        self._enqueue = enqueue
        self._reuse = reuse
        self._view = view  # None: each pass lists the namespace on the API server
        # (the view without finished jobs and Jobs, when there is one that keeps it)
        self._unfinished_view = unfinished_view or view
        self._states: dict[str, _NamespaceState] = collections.defaultdict(_NamespaceState)

    async def poke(self, namespace: str, *, unless_fresher_than: float = 0.0) -> None:
        """Run an admission pass for ``namespace`` (or make the running one repeat)."""
        state = self._states[namespace]
        if unless_fresher_than and time.monotonic() - state.last < unless_fresher_than:
            return
        state.dirty = True
        if state.lock.locked():
            return
        async with state.lock:
            while state.dirty:
                state.dirty = False
                # The view is read here, in the event loop that keeps it up to date (and
                # where handlers tell of the Jobs they created).
                snapshot = None
                if self._view:
                    jobs, bodies = self._view(namespace)
                    bodies = _keyed(state.keys, bodies)
                    jobs = _created_jobs(state.created, jobs)
                    snapshot = _created_jobs(state.direct, jobs, suspended=False), bodies
                await asyncio.to_thread(self._pass, namespace, snapshot)
                state.last = time.monotonic()

    def admit_at_once(self, namespace: str, body: dict[str, Any], job: str) -> str | None:
        """
        Whether a new job's ``job`` may be created unsuspended rather than wait for a
        pass: its time of admission (remembered as a pass's own admissions are), or None.
        Called in the event loop, where the view is kept and passes take their snapshots,
        before its Job is created: a pass that runs meanwhile counts it as running.

        Only when the caps would hold with it and every older job not finished running
        too: then it overtakes nobody who could not start as well (such a job is admitted
        by the next pass, or at once by its own handler, and admits nobody older past the
        cap in turn), whatever passes do at the same time. With bundle reuse, not when
        another job not finished has the same content key (one build for the same files
        is the pass's decision). It spares the unsuspension (a write, and a second sync
        of the Job controller) while slots are free.
        """
        if self._unfinished_view is None:
            return None  # (passes list the namespace: no view to decide from here)
        state = self._states[namespace]
        name = body["metadata"]["name"]
        key = sharing.content_key(body)
        now = time.monotonic()
        if key:
            state.keys[name] = (key, now)
        jobs, bodies = self._unfinished_view(namespace)
        bodies = _keyed(state.keys, bodies)
        order = admission.order_key(body)
        admitted = {j for j, since in state.admitted.items() if now - since <= EXPECTATION_SECONDS}
        admitted |= {
            j for j, (_, since) in state.direct.items() if now - since <= EXPECTATION_SECONDS
        }
        unfinished = {b["metadata"]["name"]: b for b in bodies if not resource.is_finished(b)}
        unfinished[name] = body
        # Slots: whose Job is admitted (running, or ended while its resource does not
        # show it yet), and Jobs whose resource is finished or not in sight.
        holding: set[str] = set()
        strays: list[str] = []
        seen = set()
        for item in jobs:
            job_name = item["metadata"]["name"]
            seen.add(job_name)
            owner = (item["metadata"].get("labels") or {}).get(model.LABEL_JOB_NAME) or ""
            unsuspended = job_name in admitted or not item.get("spec", {}).get("suspend")
            if owner in unfinished:
                if unsuspended:
                    holding.add(owner)
            elif not admission.job_finished(item):
                strays.append(owner)
        # Admitted and not in the view yet (or ended since: the view for this decision
        # leaves finished Jobs out, and the next pass forgets them): counted, so a
        # decision here may wait for a pass, never admit past a cap.
        for job_name in admitted - seen:
            owner = state.direct.get(job_name, ("", 0.0))[0]
            if owner in unfinished:
                holding.add(owner)
            else:
                strays.append(owner)
        counted: list[dict[str, Any]] = []  # the jobs that would hold a slot
        for other_name, other in unfinished.items():
            same = self._settings.reuse_bundles and key and sharing.content_key(other) == key
            if other_name != name and same:
                return None
            waits = not (_blocked(other) or sharing.is_follower(other))
            if other_name in holding or (waits and admission.order_key(other) <= order):
                counted.append(other)  # holding a slot, or older and waiting: it must fit too
        if len(counted) + len(strays) > self._settings.max_running:
            return None
        cap = self._settings.max_running_per_owner
        mine = resource.owner(body)
        if cap and len([b for b in counted if resource.owner(b) == mine]) + len(strays) > cap:
            return None  # (a stray's owner may be anyone)
        state.direct[job] = (name, now)
        return resource.submitted_at(body)

    def created(self, namespace: str, downloadjob: str, job: str) -> None:
        """
        A handler created ``downloadjob``'s (suspended) ``job``: the next pass may admit
        it before the view shows it, instead of holding the queue until it does.
        """
        self._states[namespace].created[job] = (downloadjob, time.monotonic())

    def _read(self, namespace: str, snapshot: Snapshot | None) -> Snapshot:
        """The namespace as this pass sees it: the view with the pass's own writes in."""
        if snapshot is None:
            # Jobs first: a DownloadJob is labelled before its Job is created, so every
            # Job listed has its DownloadJob's content key in the (later) listing of those.
            jobs = self._cluster.jobs(namespace)
            return jobs, self._cluster.downloadjobs(namespace)
        state = self._states[namespace]
        jobs, bodies = snapshot
        return _expected_jobs(state.admitted, jobs), _expected_bodies(state.settled, bodies)

    def _pass(self, namespace: str, snapshot: Snapshot | None = None) -> None:
        started = time.monotonic()
        state = self._states[namespace]
        jobs, bodies = self._read(namespace, snapshot)
        metrics.observe_namespace(namespace, bodies, model.utcnow())
        by_name = {b["metadata"]["name"]: b for b in bodies}
        owner_of = {name: resource.owner(b) for name, b in by_name.items()}
        waiting: list[admission.Waiting] = []
        running_owners: list[str] = []
        running_names: list[str] = []
        job_of: dict[str, dict[str, Any]] = {}
        with_job: set[str] = set()
        for job in jobs:
            name = (job["metadata"].get("labels") or {}).get(model.LABEL_JOB_NAME)
            body = by_name.get(name or "")
            if body is None:
                continue
            expected = resource.job_name(body)
            if expected and expected != job["metadata"]["name"]:
                continue  # a Job of an earlier replay, on its way out
            with_job.add(body["metadata"]["name"])
            if admission.job_running(job):
                running_owners.append(owner_of[body["metadata"]["name"]])
                running_names.append(body["metadata"]["name"])
            elif job.get("spec", {}).get("suspend") and not _blocked(body):
                waiting.append(_waiting(body, owner_of))
                job_of[body["metadata"]["name"]] = job
        now = model.utcnow()
        for name, body in by_name.items():
            if name in with_job or _blocked(body) or sharing.is_follower(body):
                continue  # (a follower has no Job: its leader's builds for it)
            created = model.parse_time(body["metadata"].get("creationTimestamp"))
            if created is not None and (now - created).total_seconds() < ENQUEUE_GRACE_SECONDS:
                # Its creation handler is about to create its Job: it keeps its place,
                # and nobody behind it is admitted meanwhile (its handler wakes a pass).
                waiting.append(_waiting(body, owner_of, ready=False))
                continue
            # Its creation handler should have run long ago: do it here, from the resource
            # as it is now (a view holds no file ids). False: it did not need a Job after
            # all (completed with a bundle built before).
            fresh = self._cluster.downloadjob(namespace, name) if snapshot is not None else body
            if fresh is None or not self._enqueue(fresh) or self._settings.reuse_bundles:
                # With reuse, its content key is read back by the next pass (its
                # new Job's event brings one): only then can it share a build.
                continue
            waiting.append(_waiting(body, owner_of))
            replays = resource.replays(body)
            job_of[name] = {"metadata": {"name": manifests.job_name(name, replays)}}
        if self._settings.reuse_bundles:
            waiting = self._share(by_name, running_names, waiting, job_of, state.settled)
        plan = admission.plan(
            waiting,
            running_owners,
            self._settings.max_running,
            self._settings.max_running_per_owner,
        )

        # The plan is made; its writes are independent of one another, so they go out
        # together: one after the other, a pass that admits or re-numbers N jobs took
        # N round trips, and under a burst admission fell behind the arrivals
        # (benchmarks/controlplane.py). Every Job it admits carries the pass's time, so
        # the order of admission is there to read whatever order the writes land in.
        admitted_at = datetime.datetime.now(tz=datetime.UTC).isoformat(timespec="microseconds")

        def admit(name: str) -> None:
            job = job_of[name]["metadata"]["name"]
            if not self._cluster.unsuspend_job(namespace, job, admitted_at):
                return
            state.admitted[job] = time.monotonic()
            if resource.queue_position(by_name[name]) is not None:
                patch = resource.status_patch(queue_position=None)
                self._cluster.patch_status(namespace, name, patch)
            log.info("admitted %s/%s", namespace, name)

        def renumber(name: str, position: int) -> None:
            self._cluster.patch_status(
                namespace, name, resource.status_patch(queue_position=position)
            )

        moved = {
            name: position
            for name, position in plan.positions.items()
            if resource.queue_position(by_name[name]) != position
        }
        with concurrent.futures.ThreadPoolExecutor(WRITERS) as pool:
            writes = [pool.submit(admit, name) for name in plan.admit]
            writes += [pool.submit(renumber, n, p) for n, p in moved.items()]
            for write in writes:
                write.result()  # the first error fails the pass, as before
        log.debug(
            "admission pass in %s: %d running, %d waiting, %d admitted, %.2f s",
            namespace,
            len(running_owners),
            len(waiting),
            len(plan.admit),
            time.monotonic() - started,
        )

    def _share(
        self,
        by_name: dict[str, dict[str, Any]],
        running: list[str],
        waiting: list[admission.Waiting],
        job_of: dict[str, dict[str, Any]],
        settled: dict[str, float],
    ) -> list[admission.Waiting]:
        """
        One build for the same files: of the jobs with one content key, the one
        running (else the first in line) builds; the others follow it, without a Job.
        Decided here, in the one pass that sees them all, never by racing creations.
        """
        builds: dict[str, str] = {}
        for name in running:
            key = sharing.content_key(by_name[name])
            if key:
                builds.setdefault(key, name)
        # A twin that completed after a job arrived (too late for its creation handler
        # to reuse it, too early for this pass to see it building) serves it still.
        built: dict[str, str] = {}
        for name, body in by_name.items():
            key = sharing.built_key(body)
            if key:
                built.setdefault(key, name)
        kept = []
        for entry in sorted(waiting, key=lambda w: w.order):
            if not entry.ready:
                kept.append(entry)  # no Job, no content key yet: it keeps its place
                continue
            body = by_name[entry.name]
            key = sharing.content_key(body)
            if (
                key is None
                and resource.phase(body) is model.Phase.QUEUED
                and not resource.job_name(body)
            ):
                continue  # seen before its creation handler wrote anything: the next pass
            job = job_of[entry.name]["metadata"]["name"]
            twin = built.get(key) if key and key not in builds else None
            if twin and self._reuse is not None and self._reuse(body, by_name[twin], job):
                settled[entry.name] = time.monotonic()
                log.info("%s completed with the bundle of %s", entry.name, twin)
                continue
            leader = builds.setdefault(key, entry.name) if key else entry.name
            if leader == entry.name:
                kept.append(entry)
                continue
            sharing.follow(self._cluster, body, leader, job)
            settled[entry.name] = time.monotonic()
            log.info("%s follows %s, which builds the same bundle", entry.name, leader)
        return kept


def _waiting(
    body: dict[str, Any], owner_of: dict[str, str], *, ready: bool = True
) -> admission.Waiting:
    name = body["metadata"]["name"]
    return admission.Waiting(name, owner_of[name], admission.order_key(body), ready)


def _blocked(body: dict[str, Any]) -> bool:
    """Not to be admitted: finished, or a cancellation is on its way."""
    return resource.is_finished(body) or model.ANNOTATION_CANCEL in resource.annotations(body)


def _created_jobs(
    created: dict[str, tuple[str, float]], jobs: list[dict[str, Any]], *, suspended: bool = True
) -> list[dict[str, Any]]:
    """``jobs`` with those this operator created (suspended or not) until the view shows them."""
    now = time.monotonic()
    names = {job["metadata"]["name"] for job in jobs}
    for name, (_, since) in list(created.items()):
        if name in names or now - since > EXPECTATION_SECONDS:
            del created[name]
    return jobs + [
        {
            "metadata": {"name": name, "labels": {model.LABEL_JOB_NAME: downloadjob}},
            "spec": {"suspend": suspended},
            "status": {},
        }
        for name, (downloadjob, _) in created.items()
    ]


def _keyed(
    keys: dict[str, tuple[str, float]], bodies: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``bodies`` with the content keys their handlers labelled them with, until the view does."""
    if not keys:
        return bodies  # (always so without bundle reuse)
    now = time.monotonic()
    names = {body["metadata"]["name"]: body for body in bodies}
    for name, (_, since) in list(keys.items()):
        body = names.get(name)
        shown = body is not None and sharing.content_key(body)
        if shown or now - since > EXPECTATION_SECONDS:
            del keys[name]
    return [
        {
            **body,
            "metadata": {
                **body["metadata"],
                "labels": {
                    **(body["metadata"].get("labels") or {}),
                    model.LABEL_CONTENT_KEY: keys[body["metadata"]["name"]][0],
                },
            },
        }
        if body["metadata"]["name"] in keys
        else body
        for body in bodies
    ]


def _pending(
    expected: dict[str, float],
    items: list[dict[str, Any]],
    shown: Callable[[dict[str, Any]], bool],
) -> set[str]:
    """
    The names of ``expected`` writes the view does not show yet. An expectation goes
    once ``shown`` says the view has it, when its object is gone from the view, or after
    :data:`EXPECTATION_SECONDS` (the write did not hold: decide again).
    """
    now = time.monotonic()
    names = {item["metadata"]["name"]: item for item in items}
    for name, since in list(expected.items()):
        item = names.get(name)
        if item is None or shown(item) or now - since > EXPECTATION_SECONDS:
            expected.pop(name, None)  # (the event loop may be dropping it too)
    return set(expected)


def _expected_jobs(admitted: dict[str, float], jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``jobs`` with those this operator unsuspended shown unsuspended, until the view is."""
    pending = _pending(
        admitted, jobs, lambda job: admission.job_running(job) or admission.job_finished(job)
    )
    return [
        {**job, "spec": {**job.get("spec", {}), "suspend": False}}
        if job["metadata"]["name"] in pending
        else job
        for job in jobs
    ]


def _expected_bodies(
    settled: dict[str, float], bodies: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """
    ``bodies`` without the jobs a pass took out of the queue (following a build, or
    completed with one) while the view still shows them queued.
    """
    pending = _pending(
        settled, bodies, lambda body: sharing.is_follower(body) or resource.is_finished(body)
    )
    return [body for body in bodies if body["metadata"]["name"] not in pending]
