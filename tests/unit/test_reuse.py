"""
A bundle built once serves every later job for the same files while none changed,
and goes only with the last job that points at it (moto S3, a fake cluster).
"""

import asyncio
import copy
import functools
from typing import Any

import pytest

from downloadjobs import model, resource
from downloadjobs.settings import S3Settings
from downloadjobs_operator import actions, sharing
from downloadjobs_operator.context import Context
from downloadjobs_operator.queue import AdmissionQueue
from downloadjobs_operator.settings import OperatorSettings
from tests.unit.fakes import FakeCluster

S3 = S3Settings(source_bucket="src", bundle_bucket="out")
FILES = [70001, 70002, 90000]  # 90000 is missing


def new(name: str, files: list[int] = FILES) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": name},
        "spec": {"fileIds": files, "owner": "alice"},
    }


@pytest.fixture
def setup(s3: Any) -> tuple[FakeCluster, Context]:
    for file_id in FILES[:2]:
        s3.put_object(Bucket="src", Key=S3.source_key(file_id), Body=f"file {file_id}".encode())
    cluster = FakeCluster()
    return cluster, Context(cluster, s3, S3, OperatorSettings())  # type: ignore[arg-type]


def build(cluster: FakeCluster, ctx: Context, name: str) -> dict[str, Any]:
    """A job queued, then completed by its worker as the real one would write it."""
    assert actions.enqueue(ctx, cluster.add(new(name))) is actions.Outcome.CREATED
    key = cluster.bodies[name]["metadata"]["labels"][model.LABEL_CONTENT_KEY]
    ctx.s3.put_object(Bucket="out", Key=S3.bundle_key("ns", name), Body=b"PK bundle")
    result = model.BundleResult(
        bucket="out",
        key=S3.bundle_key("ns", name),
        size=9,
        checksum_crc32="AAAAAA==",
        missing_file_ids=[90000],
        content_key=key,
    )
    cluster.patch_status(
        "ns",
        name,
        resource.status_patch(
            phase=model.Phase.COMPLETED, result=result, files_total=3, bytes_total=20
        ),
    )
    return cluster.bodies[name]


def test_the_same_files_again_complete_at_once_with_the_same_bundle(setup: Any) -> None:
    cluster, ctx = setup
    first = build(cluster, ctx, "first")
    again = new("again", list(reversed(FILES)))  # any order: the key sorts the ids
    assert actions.enqueue(ctx, cluster.add(again)) is actions.Outcome.REUSED
    assert cluster.created_names == ["dj-first"]  # no Job for the second
    body = cluster.bodies["again"]
    status = model.parse_status(body)
    assert status.phase is model.Phase.COMPLETED and status.progress == 100
    assert status.result is not None and status.result.reused is True
    theirs = model.parse_status(first).result
    assert theirs is not None
    assert status.result.model_copy(update={"reused": None}) == theirs
    assert body["metadata"]["annotations"][model.ANNOTATION_BUNDLE_OF] == "first"
    assert sharing.shared_bundle(ctx, body) == S3.bundle_key("ns", "first")
    # a third one names the origin too, not the job it happened to find
    assert actions.enqueue(ctx, cluster.add(new("third"))) is actions.Outcome.REUSED
    assert cluster.bodies["third"]["metadata"]["annotations"][model.ANNOTATION_BUNDLE_OF] == "first"


def test_a_changed_source_gives_a_new_bundle(setup: Any) -> None:
    cluster, ctx = setup
    build(cluster, ctx, "first")
    ctx.s3.put_object(Bucket="src", Key=S3.source_key(70002), Body=b"changed")
    assert actions.enqueue(ctx, cluster.add(new("after"))) is actions.Outcome.CREATED
    labels = {
        b: cluster.bodies[b]["metadata"]["labels"][model.LABEL_CONTENT_KEY] for b in cluster.bodies
    }
    assert labels["first"] != labels["after"]
    ctx.s3.put_object(Bucket="src", Key=S3.source_key(90000), Body=b"now there")
    assert actions.enqueue(ctx, cluster.add(new("found"))) is actions.Outcome.CREATED


@pytest.mark.parametrize("why", ["bundle gone", "being deleted", "not completed", "disabled"])
def test_no_reuse_of_what_cannot_be_served(setup: Any, why: str) -> None:
    cluster, ctx = setup
    first = build(cluster, ctx, "first")
    if why == "bundle gone":
        ctx.s3.delete_object(Bucket="out", Key=S3.bundle_key("ns", "first"))
    elif why == "being deleted":
        first["metadata"]["deletionTimestamp"] = "2026-11-29T00:00:00Z"
    elif why == "not completed":
        first["status"]["phase"] = "Processing"
    else:
        ctx = Context(cluster, ctx.s3, S3, OperatorSettings(reuse_bundles=False))
    assert actions.enqueue(ctx, cluster.add(new("again"))) is actions.Outcome.CREATED
    assert cluster.created_names == ["dj-first", "dj-again"]


def test_a_job_changed_meanwhile_is_decided_again_from_what_was_written(setup: Any) -> None:
    """
    The create handler and an admission pass act on one new job at once: the first
    queued it (no bundle to reuse then); the second still holds the body from before
    and now finds a bundle. It must not complete a job whose Job exists.
    """
    cluster, ctx = setup
    stale = cluster.add(new("again"))
    assert actions.enqueue(ctx, copy.deepcopy(stale)) is actions.Outcome.CREATED
    build(cluster, ctx, "first")  # a twin completes meanwhile
    assert actions.enqueue(ctx, stale) is actions.Outcome.CREATED  # the Job, idempotently
    assert cluster.bodies["again"]["status"]["phase"] == "Queued"
    assert cluster.created_names == ["dj-again", "dj-first", "dj-again"]


def test_a_shared_bundle_goes_with_the_last_job_that_points_at_it(setup: Any) -> None:
    cluster, ctx = setup
    build(cluster, ctx, "first")
    actions.enqueue(ctx, cluster.add(new("again")))
    key = S3.bundle_key("ns", "first")

    def delete(name: str) -> None:
        cluster.bodies[name]["metadata"]["deletionTimestamp"] = "2026-11-29T00:00:00Z"
        actions.cleanup(ctx, cluster.downloadjob("ns", name) or {})
        del cluster.bodies[name]

    delete("first")  # the job that built it goes first
    assert ctx.s3.head_object(Bucket="out", Key=key)["ContentLength"] == 9
    delete("again")
    with pytest.raises(ctx.s3.exceptions.ClientError):
        ctx.s3.head_object(Bucket="out", Key=key)


def test_a_job_of_its_own_takes_its_bundle_when_it_goes(setup: Any) -> None:
    cluster, ctx = setup
    build(cluster, ctx, "first")
    actions.cleanup(ctx, cluster.downloadjob("ns", "first") or {})
    with pytest.raises(ctx.s3.exceptions.ClientError):
        ctx.s3.head_object(Bucket="out", Key=S3.bundle_key("ns", "first"))


def in_flight(cluster: FakeCluster, ctx: Context, names: list[str]) -> AdmissionQueue:
    """New jobs for the same files, each with its suspended Job, and one admission pass."""
    for index, name in enumerate(names):
        body = new(name)
        body["metadata"]["annotations"] = {
            model.ANNOTATION_SUBMITTED_AT: f"2026-11-29T00:00:0{index}Z"
        }
        assert actions.enqueue(ctx, cluster.add(body)) is actions.Outcome.CREATED
    queue = AdmissionQueue(ctx.cluster, ctx.settings, lambda body: True)
    queue._pass("ns")
    return queue


def test_identical_requests_in_flight_share_one_build(setup: Any) -> None:
    cluster, ctx = setup
    in_flight(cluster, ctx, ["a", "b", "c"])
    assert cluster.unsuspended == ["dj-a"]  # one build
    assert sorted(cluster.jobs_deleted) == ["dj-b", "dj-c"]  # the others' suspended Jobs
    for name in ("b", "c"):
        body = cluster.bodies[name]
        assert body["metadata"]["annotations"][model.ANNOTATION_BUNDLE_OF] == "a"
        assert resource.phase(body) is model.Phase.QUEUED and resource.job_name(body) is None
        assert body["status"]["conditions"][0]["reason"] == "SharedBuild"
        assert (
            actions.enqueue(ctx, cluster.downloadjob("ns", name) or {}) is actions.Outcome.FOLLOWING
        )
    # later passes leave the followers alone: no Job, never admitted
    AdmissionQueue(ctx.cluster, ctx.settings, lambda body: False)._pass("ns")
    assert cluster.unsuspended == ["dj-a"] and set(cluster.job_bodies) == {"dj-a"}


def test_identical_requests_at_once_share_one_build_while_the_view_lags(setup: Any) -> None:
    """
    Two creation handlers for the same files, each asking whether its Job may start at
    once, while the view shows neither's content key nor Job yet: one build still.
    """
    cluster, ctx = setup

    def unlabelled(ns: str) -> Any:
        bodies = cluster.downloadjobs(ns)
        for body in bodies:
            body["metadata"].pop("labels", None)
        return [], bodies

    queue = AdmissionQueue(ctx.cluster, ctx.settings, lambda body: True, view=unlabelled)
    outcomes = []
    for index, name in enumerate(["a", "b"]):
        body = new(name)
        body["metadata"]["annotations"] = {
            model.ANNOTATION_SUBMITTED_AT: f"2026-11-29T00:00:0{index}Z"
        }
        admit = functools.partial(queue.admit_at_once, "ns")
        outcomes.append(actions.enqueue(ctx, cluster.add(body), admit))
    assert outcomes == [actions.Outcome.ADMITTED, actions.Outcome.CREATED]
    queue.created("ns", "b", "dj-b")  # as its handler tells
    asyncio.run(queue.poke("ns"))
    assert cluster.unsuspended == [], "b is not admitted next to a"
    assert cluster.bodies["b"]["metadata"]["annotations"][model.ANNOTATION_BUNDLE_OF] == "a"
    assert cluster.jobs_deleted == ["dj-b"]


def finish(cluster: FakeCluster, ctx: Context, name: str, condition: str) -> None:
    """The leader's worker wrote its result (on success), then its Job ended."""
    if condition == "Complete":
        result = model.BundleResult(bucket="out", key=S3.bundle_key("ns", name), size=9)
        cluster.patch_status("ns", name, resource.status_patch(result=result, files_total=3))
    actions.follow(ctx, cluster.end_job(f"dj-{name}", condition))


def test_followers_complete_with_the_leader(setup: Any) -> None:
    cluster, ctx = setup
    in_flight(cluster, ctx, ["a", "b", "c"])
    finish(cluster, ctx, "a", "Complete")
    for name in ("a", "b", "c"):
        assert resource.phase(cluster.bodies[name]) is model.Phase.COMPLETED
    assert cluster.bodies["b"]["status"]["result"]["reused"] is True
    assert cluster.bodies["b"]["status"]["result"]["key"] == S3.bundle_key("ns", "a")


def test_followers_fail_with_the_leader(setup: Any) -> None:
    cluster, ctx = setup
    in_flight(cluster, ctx, ["a", "b"])
    cluster.patch_status(
        "ns",
        "a",
        resource.status_patch(error=model.JobError(reason="AllFilesMissing", message="none")),
    )
    finish(cluster, ctx, "a", "Failed")
    body = cluster.bodies["b"]
    assert resource.phase(body) is model.Phase.FAILED
    assert body["status"]["error"]["reason"] == "AllFilesMissing"
    assert body["metadata"]["labels"][model.LABEL_DEAD_LETTER] == "true"


def test_cancelling_the_leader_keeps_the_build_for_the_others(setup: Any) -> None:
    cluster, ctx = setup
    in_flight(cluster, ctx, ["a", "b"])
    assert actions.cancel(ctx, cluster.downloadjob("ns", "a") or {}) is actions.Outcome.CANCELLED
    assert resource.phase(cluster.bodies["a"]) is model.Phase.CANCELLED
    assert "dj-a" in cluster.job_bodies, "the build goes on for b"
    assert actions.reconcile(ctx, cluster.downloadjob("ns", "b") or {}) == []  # still waits
    finish(cluster, ctx, "a", "Complete")
    assert resource.phase(cluster.bodies["b"]) is model.Phase.COMPLETED
    assert resource.phase(cluster.bodies["a"]) is model.Phase.CANCELLED


def test_a_follower_whose_leader_went_builds_for_itself(setup: Any) -> None:
    cluster, ctx = setup
    in_flight(cluster, ctx, ["a", "b"])
    del cluster.bodies["a"]
    assert actions.reconcile(ctx, cluster.downloadjob("ns", "b") or {}) == ["Released"]
    body = cluster.bodies["b"]
    assert model.ANNOTATION_BUNDLE_OF not in body["metadata"]["annotations"]
    assert resource.job_name(body) == "dj-b" and "dj-b" in cluster.job_bodies
    assert cluster.job_bodies["dj-b"]["spec"]["suspend"] is True  # waits for a slot like any job


def test_cancelling_a_follower_leaves_the_build_alone(setup: Any) -> None:
    cluster, ctx = setup
    in_flight(cluster, ctx, ["a", "b"])
    assert actions.cancel(ctx, cluster.downloadjob("ns", "b") or {}) is actions.Outcome.CANCELLED
    assert "dj-a" in cluster.job_bodies
    finish(cluster, ctx, "a", "Complete")
    assert resource.phase(cluster.bodies["b"]) is model.Phase.CANCELLED


def test_s3_away_means_no_reuse_not_no_job() -> None:
    """Reuse is a saving, never a dependency: an S3 blip must not hold up admission."""
    from botocore.exceptions import EndpointConnectionError

    class Unreachable:
        def head_object(self, **_: Any) -> Any:
            raise EndpointConnectionError(endpoint_url="http://s3.invalid")

    cluster = FakeCluster()
    ctx = Context(cluster, Unreachable(), S3, OperatorSettings())  # type: ignore[arg-type]
    assert actions.enqueue(ctx, cluster.add(new("alone"))) is actions.Outcome.CREATED
    assert model.LABEL_CONTENT_KEY not in (cluster.bodies["alone"]["metadata"].get("labels") or {})


def twin_completes_before_the_next_pass(
    cluster: FakeCluster, ctx: Context, *, bundle: bool, s3_away: Any = None
) -> AdmissionQueue:
    """``a`` is building when ``b`` arrives; ``a`` completes before any pass sees ``b``."""
    queue = AdmissionQueue(
        ctx.cluster, ctx.settings, lambda body: True, functools.partial(sharing.reuse, ctx)
    )
    assert actions.enqueue(ctx, cluster.add(new("a"))) is actions.Outcome.CREATED
    queue._pass("ns")
    assert cluster.unsuspended == ["dj-a"]
    late = new("b")
    late["metadata"]["creationTimestamp"] = "2026-11-29T00:00:01Z"
    assert actions.enqueue(ctx, cluster.add(late)) is actions.Outcome.CREATED  # a still builds
    key = cluster.bodies["a"]["metadata"]["labels"][model.LABEL_CONTENT_KEY]
    if bundle:
        ctx.s3.put_object(Bucket="out", Key=S3.bundle_key("ns", "a"), Body=b"PK bundle")
    result = model.BundleResult(bucket="out", key=S3.bundle_key("ns", "a"), size=9, content_key=key)
    cluster.patch_status("ns", "a", resource.status_patch(result=result, files_total=3))
    actions.follow(ctx, cluster.end_job("dj-a", "Complete"))
    assert resource.phase(cluster.bodies["a"]) is model.Phase.COMPLETED
    if s3_away:
        ctx.s3.head_object = s3_away
    queue._pass("ns")
    return queue


def test_a_twin_that_completed_before_the_next_pass_serves_the_job_that_waited(
    setup: Any,
) -> None:
    cluster, ctx = setup
    twin_completes_before_the_next_pass(cluster, ctx, bundle=True)
    body = cluster.bodies["b"]
    assert resource.phase(body) is model.Phase.COMPLETED
    assert body["status"]["result"]["reused"] is True
    assert body["status"]["result"]["key"] == S3.bundle_key("ns", "a")
    assert cluster.unsuspended == ["dj-a"], "no second build"
    assert "dj-b" in cluster.jobs_deleted and "dj-b" not in cluster.job_bodies


def test_a_twin_whose_bundle_is_gone_serves_nobody(setup: Any) -> None:
    cluster, ctx = setup
    twin_completes_before_the_next_pass(cluster, ctx, bundle=False)
    assert resource.phase(cluster.bodies["b"]) is model.Phase.QUEUED
    assert cluster.unsuspended == ["dj-a", "dj-b"], "it builds its own"


def test_s3_away_at_the_pass_means_a_build_not_a_stuck_queue(setup: Any) -> None:
    from botocore.exceptions import EndpointConnectionError

    cluster, ctx = setup

    def unreachable(**_: Any) -> Any:
        raise EndpointConnectionError(endpoint_url="http://s3.invalid")

    twin_completes_before_the_next_pass(cluster, ctx, bundle=True, s3_away=unreachable)
    assert resource.phase(cluster.bodies["b"]) is model.Phase.QUEUED
    assert cluster.unsuspended == ["dj-a", "dj-b"], "it builds its own"
