"""First in, first out, within the caps: admission as a pure function."""

import asyncio
import datetime
import time
from typing import Any

from downloadjobs import model, resource
from downloadjobs.settings import S3Settings
from downloadjobs_operator import actions
from downloadjobs_operator import queue as queue_module
from downloadjobs_operator.admission import Plan, Waiting, job_running, order_key, plan
from downloadjobs_operator.context import Context
from downloadjobs_operator.queue import AdmissionQueue
from downloadjobs_operator.settings import OperatorSettings
from tests.unit.fakes import FakeCluster


def waiting(*names: str, owner: str = "a") -> list[Waiting]:
    return [Waiting(n, owner, ("2026-01-01T00:00:00Z", f"{i:03}", n)) for i, n in enumerate(names)]


def test_admits_the_oldest_into_free_slots() -> None:
    result = plan(waiting("j1", "j2", "j3", "j4"), ["x", "y"], max_running=3)
    assert result.admit == ["j1"]
    assert result.positions == {"j2": 1, "j3": 2, "j4": 3}


def test_full_means_nobody_moves() -> None:
    result = plan(waiting("j1", "j2"), ["x"] * 5, max_running=5)
    assert result.admit == []
    assert result.positions == {"j1": 1, "j2": 2}


def test_order_is_submission_order_not_names() -> None:
    late = Waiting("aaa", "o", ("2026-01-01T00:00:01Z", "2026-01-01T00:00:01.5", "aaa"))
    early = Waiting("zzz", "o", ("2026-01-01T00:00:01Z", "2026-01-01T00:00:01.1", "zzz"))
    assert plan([late, early], [], max_running=1).admit == ["zzz"]


def test_per_owner_cap_skips_without_blocking_others() -> None:
    queue = [*waiting("a1", "a2", owner="alice"), *waiting("b1", owner="bob")]
    queue = sorted(queue, key=lambda w: w.name)
    result = plan(queue, ["alice"], max_running=3, max_running_per_owner=1)
    assert result.admit == ["b1"]
    assert result.positions == {"a1": 1, "a2": 2}


def test_order_key_reads_the_submission_annotation() -> None:
    body = {
        "metadata": {
            "name": "n",
            "creationTimestamp": "t",
            "annotations": {"downloadjobs.dev/submitted-at": "s"},
        }
    }
    assert order_key(body) == ("t", "s", "n")


def test_running_means_admitted_and_unfinished() -> None:
    assert job_running({"spec": {"suspend": False}, "status": {"active": 1}})
    assert not job_running({"spec": {"suspend": True}})
    done = {"type": "Complete", "status": "True"}
    assert not job_running({"spec": {}, "status": {"conditions": [done]}})


def test_nobody_overtakes_a_job_whose_job_is_not_there_yet() -> None:
    early, middle, late = waiting("j1", "j2", "j3")
    pending = Waiting(early.name, early.owner, early.order, ready=False)
    assert plan([pending, middle, late], [], max_running=3) == Plan(
        admit=[], positions={"j2": 2, "j3": 3}
    )
    held = Waiting(middle.name, middle.owner, middle.order, ready=False)
    assert plan([early, held, late], [], max_running=3) == Plan(admit=["j1"], positions={"j3": 2})


def queued(cluster: FakeCluster, ctx: Context, name: str, second: int, *, job: bool) -> None:
    created = model.utcnow() - datetime.timedelta(seconds=10 if not job else 5)
    body = {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": name,
            "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "annotations": {model.ANNOTATION_SUBMITTED_AT: f"2026-11-30T00:00:{second:02}Z"},
        },
        "spec": {"fileIds": [second], "owner": "alice"},
    }
    stored = cluster.add(body)
    if job:
        assert actions.enqueue(ctx, stored) is actions.Outcome.CREATED


def test_a_pass_admits_in_order_and_stamps_its_jobs_alike() -> None:
    cluster = FakeCluster()
    settings = OperatorSettings(max_running=3, reuse_bundles=False)
    ctx = Context(cluster, None, S3Settings(source_bucket="s", bundle_bucket="b"), settings)  # type: ignore[arg-type]
    queue = AdmissionQueue(cluster, settings, lambda body: True)
    queued(cluster, ctx, "first", 0, job=False)  # just created: its handler has not run yet
    for second, name in enumerate(["e", "d", "c", "b", "a"], start=1):  # names against age
        queued(cluster, ctx, name, second, job=True)
    queue._pass("ns")
    assert cluster.unsuspended == [], "nobody overtakes the first while its Job is not there"
    assert [resource.queue_position(cluster.bodies[n]) for n in "edcba"] == [2, 3, 4, 5, 6]

    assert actions.enqueue(ctx, cluster.downloadjob("ns", "first") or {}) is actions.Outcome.CREATED
    queue._pass("ns")
    assert sorted(cluster.unsuspended) == ["dj-d", "dj-e", "dj-first"]
    stamps = {
        cluster.job_bodies[job]["metadata"]["annotations"][model.ANNOTATION_ADMITTED_AT]
        for job in cluster.unsuspended
    }
    assert len(stamps) == 1, "one pass, one admission time"
    assert [resource.queue_position(cluster.bodies[n]) for n in "cba"] == [1, 2, 3]


def test_a_view_behind_the_passes_own_writes_never_admits_past_the_cap() -> None:
    """
    The passes read kopf's view of the namespace, which can lag their own writes:
    a Job a pass unsuspended still counts as running while the view shows it suspended.
    """
    cluster = FakeCluster()
    settings = OperatorSettings(max_running=1, reuse_bundles=False)
    ctx = Context(cluster, None, S3Settings(source_bucket="s", bundle_bucket="b"), settings)  # type: ignore[arg-type]
    for second, name in enumerate(["a", "b"]):
        queued(cluster, ctx, name, second, job=True)
    stale = (cluster.jobs("ns"), cluster.downloadjobs("ns"))  # both Jobs suspended
    queue = AdmissionQueue(cluster, settings, lambda body: True)
    queue._pass("ns", stale)
    assert cluster.unsuspended == ["dj-a"]
    queue._pass("ns", stale)  # the view has not caught up: a is shown suspended still
    assert cluster.unsuspended == ["dj-a"], "b must wait: a holds the only slot"
    queue._pass("ns", (cluster.jobs("ns"), cluster.downloadjobs("ns")))  # caught up
    assert cluster.unsuspended == ["dj-a"] and not queue._states["ns"].admitted
    cluster.end_job("dj-a", "Complete")
    queue._pass("ns", (cluster.jobs("ns"), cluster.downloadjobs("ns")))
    assert cluster.unsuspended == ["dj-a", "dj-b"]


def test_an_expectation_the_view_never_confirms_is_decided_again() -> None:
    cluster = FakeCluster()
    settings = OperatorSettings(max_running=1, reuse_bundles=False)
    ctx = Context(cluster, None, S3Settings(source_bucket="s", bundle_bucket="b"), settings)  # type: ignore[arg-type]
    queued(cluster, ctx, "a", 0, job=True)
    stale = (cluster.jobs("ns"), cluster.downloadjobs("ns"))
    queue = AdmissionQueue(cluster, settings, lambda body: True)
    queue._pass("ns", stale)
    assert cluster.unsuspended == ["dj-a"]
    queue._pass("ns", stale)
    assert cluster.unsuspended == ["dj-a"], "not unsuspended twice while expected"
    queue._states["ns"].admitted["dj-a"] -= queue_module.EXPECTATION_SECONDS + 1
    queue._pass("ns", stale)
    assert cluster.unsuspended == ["dj-a", "dj-a"], "an expired expectation is decided again"


def test_a_job_its_handler_created_is_admitted_before_the_view_shows_it() -> None:
    """The creation handler's word stands in for the view's lag: no pass waits for it."""
    cluster = FakeCluster()
    settings = OperatorSettings(max_running=2, reuse_bundles=False)
    ctx = Context(cluster, None, S3Settings(source_bucket="s", bundle_bucket="b"), settings)  # type: ignore[arg-type]
    queued(cluster, ctx, "a", 0, job=True)
    lagging = ([], cluster.downloadjobs("ns"))  # the DownloadJob, not its Job yet
    queue = AdmissionQueue(cluster, settings, lambda body: True, view=lambda ns: lagging)
    asyncio.run(queue.poke("ns"))
    assert cluster.unsuspended == [], "a job without a Job in sight holds its place"
    queue.created("ns", "a", "dj-a")
    asyncio.run(queue.poke("ns"))
    assert cluster.unsuspended == ["dj-a"]
    asyncio.run(queue.poke("ns"))
    assert cluster.unsuspended == ["dj-a"], "admitted once, while the view still lags"
    queue._states["ns"].created["dj-a"] = ("a", time.monotonic() - 31)
    queue._states["ns"].admitted.clear()
    asyncio.run(queue.poke("ns"))
    assert not queue._states["ns"].created, "an old word goes: the view decides again"


def test_a_job_its_handler_never_queued_is_queued_from_the_resource_not_the_view() -> None:
    """The view holds no file ids: the pass that stands in for a lost handler reads them."""
    cluster = FakeCluster()
    settings = OperatorSettings(max_running=2, reuse_bundles=False)
    created = model.utcnow() - datetime.timedelta(seconds=queue_module.ENQUEUE_GRACE_SECONDS + 5)
    body = {
        "metadata": {
            "name": "old",
            "namespace": "ns",
            "uid": "old",
            "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "spec": {"fileIds": [70000, 70001], "owner": "alice"},
    }
    cluster.add(body)
    slim = [{**b, "spec": {"owner": "alice"}} for b in cluster.downloadjobs("ns")]
    enqueued: list[dict[str, Any]] = []

    def enqueue(fresh: dict[str, Any]) -> bool:
        enqueued.append(fresh)
        return cluster.create_job("ns", {"metadata": {"name": "dj-old"}, "spec": {"suspend": True}})

    AdmissionQueue(cluster, settings, enqueue)._pass("ns", ([], slim))
    assert [b["spec"]["fileIds"] for b in enqueued] == [[70000, 70001]]
    assert cluster.unsuspended == ["dj-old"]


def direct_setup(max_running: int, **settings: Any) -> tuple[FakeCluster, Context, AdmissionQueue]:
    cluster = FakeCluster()
    options = OperatorSettings(max_running=max_running, reuse_bundles=False, **settings)
    ctx = Context(cluster, None, S3Settings(source_bucket="s", bundle_bucket="b"), options)  # type: ignore[arg-type]
    view = lambda ns: (cluster.jobs(ns), cluster.downloadjobs(ns))  # noqa: E731 (always current)
    return cluster, ctx, AdmissionQueue(cluster, options, lambda body: True, view=view)


def arrive_with(cluster: FakeCluster, ctx: Context, queue: AdmissionQueue, name: str) -> Any:
    """A new job, its creation handler asking the queue whether it may start at once."""
    queued(cluster, ctx, name, len(cluster.bodies), job=False)
    body = cluster.downloadjob("ns", name) or {}
    return actions.enqueue(ctx, body, lambda fresh, job: queue.admit_at_once("ns", fresh, job))


def test_a_new_job_starts_at_once_while_everyone_fits_under_the_cap() -> None:
    cluster, ctx, queue = direct_setup(max_running=2)
    assert arrive_with(cluster, ctx, queue, "a") is actions.Outcome.ADMITTED
    assert arrive_with(cluster, ctx, queue, "b") is actions.Outcome.ADMITTED
    assert arrive_with(cluster, ctx, queue, "c") is actions.Outcome.CREATED, "the cap is reached"
    jobs = {j["metadata"]["name"]: j for j in cluster.jobs("ns")}
    assert [jobs[f"dj-{n}"]["spec"]["suspend"] for n in "abc"] == [False, False, True]
    assert model.ANNOTATION_ADMITTED_AT in jobs["dj-a"]["metadata"]["annotations"]
    assert cluster.unsuspended == [], "no write to unsuspend them"
    queue._pass("ns", (cluster.jobs("ns"), cluster.downloadjobs("ns")))
    assert cluster.unsuspended == [], "the pass counts them as running: c waits"


def test_a_job_admitted_at_once_counts_before_the_view_shows_its_job() -> None:
    cluster, ctx, queue = direct_setup(max_running=1)
    lagging = ([], [])
    queue._view = lambda ns: (lagging[0], cluster.downloadjobs(ns))  # never shows Jobs
    assert arrive_with(cluster, ctx, queue, "a") is actions.Outcome.ADMITTED
    queued(cluster, ctx, "b", 9, job=True)
    asyncio.run(queue.poke("ns"))
    assert cluster.unsuspended == [], "a holds the only slot though no Job is in sight"


def test_a_new_job_starts_at_once_only_if_the_older_ones_waiting_fit_too() -> None:
    cluster, ctx, queue = direct_setup(max_running=2)
    queued(cluster, ctx, "old", 0, job=False)
    old = cluster.downloadjob("ns", "old") or {}
    assert actions.enqueue(ctx, old) is actions.Outcome.CREATED  # suspended, no pass yet
    assert arrive_with(cluster, ctx, queue, "new") is actions.Outcome.ADMITTED, "both fit"
    assert arrive_with(cluster, ctx, queue, "newer") is actions.Outcome.CREATED, "old must fit"
    queue._pass("ns", (cluster.jobs("ns"), cluster.downloadjobs("ns")))
    assert cluster.unsuspended == ["dj-old"], "the older one's slot was kept for it"
    stamps = {
        j["metadata"]["name"]: j["metadata"]["annotations"][model.ANNOTATION_ADMITTED_AT]
        for j in cluster.jobs("ns")
        if not j["spec"]["suspend"]
    }
    assert stamps["dj-new"] == resource.submitted_at(cluster.bodies["new"]), "admitted at once"


def test_a_job_whose_job_existed_gets_the_slot_it_was_given() -> None:
    cluster, ctx, queue = direct_setup(max_running=5)
    queued(cluster, ctx, "a", 0, job=False)
    body = cluster.downloadjob("ns", "a") or {}
    cluster.create_job("ns", {"metadata": {"name": "dj-a"}, "spec": {"suspend": True}})
    cluster.create_job = lambda namespace, manifest: False  # type: ignore[method-assign]  # 409
    outcome = actions.enqueue(ctx, body, lambda fresh, job: queue.admit_at_once("ns", fresh, job))
    assert outcome is actions.Outcome.EXISTED
    assert cluster.unsuspended == ["dj-a"]
