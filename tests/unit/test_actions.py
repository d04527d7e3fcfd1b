"""The operator's periodic reconcile, against a fake cluster: expiry, recovery, stalls."""

import datetime
from typing import Any

from downloadjobs import model
from downloadjobs.settings import S3Settings
from downloadjobs_operator import actions, admission
from downloadjobs_operator.context import Context
from downloadjobs_operator.settings import OperatorSettings
from tests.unit.fakes import FakeCluster


def context(cluster: FakeCluster, **settings: Any) -> Context:
    return Context(cluster, None, S3Settings(), OperatorSettings(**settings))  # type: ignore[arg-type]


def body(status: dict[str, Any], created: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    return {
        "metadata": {"name": "abc", "namespace": "ns", "uid": "u", "creationTimestamp": created},
        "spec": {"fileIds": [70000]},
        "status": status,
    }


def ago(seconds: int) -> str:
    return (model.utcnow() - datetime.timedelta(seconds=seconds)).isoformat()


def test_finished_jobs_expire_after_their_ttl() -> None:
    cluster = FakeCluster()
    ctx = context(cluster, ttl_completed_seconds=60, ttl_failed_seconds=600)
    assert actions.reconcile(ctx, body({"phase": "Completed", "completedAt": ago(30)})) == []
    assert actions.reconcile(ctx, body({"phase": "Completed", "completedAt": ago(90)})) == [
        "Expired"
    ]
    assert actions.reconcile(ctx, body({"phase": "Failed", "completedAt": ago(90)})) == []
    assert actions.reconcile(ctx, body({"phase": "Failed", "completedAt": ago(900)})) == ["Expired"]
    assert cluster.deleted == ["abc", "abc"]


def test_a_lost_job_is_recreated_or_the_result_recovered() -> None:
    cluster = FakeCluster(job=None)
    ctx = context(cluster)
    notes = actions.reconcile(ctx, body({"phase": "Queued", "jobName": "dj-abc"}))
    assert notes == ["JobRecreated"]
    assert cluster.created[0]["metadata"]["name"] == "dj-abc"
    result = {"bucket": "b", "key": "k", "size": 1, "sha256": "0" * 64}
    notes = actions.reconcile(
        ctx, body({"phase": "Processing", "jobName": "dj-abc", "result": result})
    )
    assert notes == ["Recovered"]
    assert cluster.status_patches[-1]["phase"] == "Completed"


def test_a_stale_heartbeat_restarts_the_pod() -> None:
    running = {
        "metadata": {"name": "dj-abc"},
        "spec": {"suspend": False},
        "status": {"active": 1, "startTime": ago(900)},
    }
    cluster = FakeCluster(job=running)
    ctx = context(cluster, stall_seconds=60)
    fresh = body(
        {
            "phase": "Processing",
            "jobName": "dj-abc",
            "attempts": 1,
            "startedAt": ago(900),
            "heartbeatAt": ago(10),
        }
    )
    assert actions.reconcile(ctx, fresh) == []
    stale = body(
        {
            "phase": "Processing",
            "jobName": "dj-abc",
            "attempts": 1,
            "startedAt": ago(900),
            "heartbeatAt": ago(120),
        }
    )
    assert actions.reconcile(ctx, stale) == ["Stalled"]
    assert cluster.pods_deleted == ["dj-abc"]
    # Only pods older than the limit: a replacement pod has not written its first heartbeat.
    assert cluster.started_before <= model.utcnow() - datetime.timedelta(seconds=60)


def test_a_job_being_deleted_never_gets_its_job_back() -> None:
    cluster = FakeCluster(job=None)
    deleting = body({"phase": "Processing", "jobName": "dj-abc"})
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert actions.reconcile(context(cluster), deleting) == []
    assert cluster.created == []


def test_a_resumed_pod_is_told_once_in_an_event() -> None:
    cluster = FakeCluster(job={"metadata": {"name": "dj-abc"}, "spec": {}, "status": {}})
    ctx = context(cluster)
    running = {"phase": "Processing", "jobName": "dj-abc", "resumedFromPart": 7}
    assert "Resumed" in actions.reconcile(ctx, body(running))
    assert "Resumed" not in actions.reconcile(ctx, body(running))
    assert cluster.events == [
        ("abc.resumed-7", "Resumed", "A retried pod resumed the upload after part 7.")
    ]
    fresh = context(cluster)  # a new operator process: the fixed event name makes it a 409
    assert "Resumed" not in actions.reconcile(fresh, body({**running, "phase": "Completed"}))


def test_cancel_and_deletion_remove_the_checkpoint_with_the_upload(s3: Any) -> None:
    settings = S3Settings(bundle_bucket="out")
    key = settings.bundle_key("ns", "abc")
    for action in (actions.cancel, actions.cleanup):
        s3.create_multipart_upload(Bucket="out", Key=key)
        s3.put_object(Bucket="out", Key=f"{key}.checkpoint", Body=b"{}")
        ctx = Context(FakeCluster(), s3, settings, OperatorSettings())  # type: ignore[arg-type]
        action(ctx, body({"phase": "Processing"}))
        assert s3.list_objects_v2(Bucket="out").get("KeyCount") == 0, action
        assert s3.list_multipart_uploads(Bucket="out").get("Uploads", []) == [], action


def annotated(status: dict[str, Any], annotation: str) -> dict[str, Any]:
    fresh = body(status)
    fresh["metadata"]["annotations"] = {annotation: "2026-01-01T00:00:01Z"}
    return fresh


def test_first_sight_honours_an_annotation_set_before_the_operator_looked() -> None:
    assert actions.first_sight(body({})) == "enqueue"
    assert actions.first_sight(annotated({}, model.ANNOTATION_CANCEL)) == "cancel"
    assert actions.first_sight(annotated({}, model.ANNOTATION_RETRY)) == "replay"


def test_a_job_cancelled_before_the_operator_saw_it_never_gets_a_job(s3: Any) -> None:
    cluster = FakeCluster()
    ctx = Context(cluster, s3, S3Settings(bundle_bucket="out"), OperatorSettings())  # type: ignore[arg-type]
    assert actions.arrive(ctx, annotated({}, model.ANNOTATION_CANCEL)) == "cancelled"
    assert cluster.created == []
    assert [p["phase"] for p in cluster.status_patches] == ["Cancelled"]
    # Half-queued by an earlier, interrupted try: its suspended Job goes.
    queued = annotated({"phase": "Queued", "jobName": "dj-abc"}, model.ANNOTATION_CANCEL)
    assert actions.arrive(ctx, queued) == "cancelled"
    assert cluster.created == []
    assert cluster.jobs_deleted == ["dj-abc"]


def test_a_retry_set_before_the_operator_saw_it_is_replayed_or_dropped() -> None:
    cluster = FakeCluster()
    ctx = context(cluster)
    failed = annotated({"phase": "Failed", "jobName": "dj-abc"}, model.ANNOTATION_RETRY)
    assert actions.arrive(ctx, failed) == "replayed"
    assert len(cluster.created) == 1
    assert cluster.status_patches[-1]["phase"] == "Queued"
    # A stray retry on a new job is removed and the job queued as usual.
    cluster = FakeCluster()
    ctx = context(cluster, reuse_bundles=False)
    assert actions.arrive(ctx, annotated({}, model.ANNOTATION_RETRY)) == "created"
    assert cluster.metadata_patches == [{"annotations": {model.ANNOTATION_RETRY: None}}]
    assert len(cluster.created) == 1
    assert cluster.status_patches[-1]["phase"] == "Queued"


def test_reconcile_cancels_a_job_whose_cancel_no_handler_heard(s3: Any) -> None:
    """Seen on the real control plane: a DELETE while the create handler ran was lost."""
    cluster = FakeCluster()
    ctx = Context(cluster, s3, S3Settings(bundle_bucket="out"), OperatorSettings())  # type: ignore[arg-type]
    running = annotated({"phase": "Processing", "jobName": "dj-abc"}, model.ANNOTATION_CANCEL)
    assert actions.reconcile(ctx, running) == ["Cancelled"]
    assert cluster.status_patches[-1]["phase"] == "Cancelled"
    assert cluster.jobs_deleted == ["dj-abc"]
    assert cluster.created == [], "a cancelled job never gets its Job back"


FORBIDDEN = (
    'Error creating: pods "dj-abc-x" is forbidden: violates PodSecurity "restricted:latest": '
    'runAsNonRoot != true (container "worker" must not set securityContext.runAsNonRoot=false)'
)


def test_a_job_whose_pod_the_api_server_refuses_fails_with_its_words() -> None:
    admitted = {
        "metadata": {"name": "dj-abc", "uid": "j"},
        "spec": {"suspend": False},
        "status": {"startTime": ago(5)},
    }
    cluster = FakeCluster(job=admitted, refusal=FORBIDDEN)
    ctx = context(cluster)
    processing = body({"phase": "Processing", "jobName": "dj-abc", "startedAt": ago(5)})
    assert actions.reconcile(ctx, processing) == ["PodRefused"]
    (patch,) = cluster.status_patches
    assert patch["phase"] == "Failed"
    assert patch["error"]["reason"] == "PodRefused"
    assert 'violates PodSecurity "restricted:latest"' in patch["error"]["message"]
    assert cluster.metadata_patches == [{"labels": {model.LABEL_DEAD_LETTER: "true"}}]
    assert cluster.jobs_deleted == ["dj-abc"]


def test_a_job_with_a_pod_or_still_queued_is_never_asked_about_refusals() -> None:
    for job_status, spec in (
        ({"active": 1, "startTime": ago(5)}, {"suspend": False}),
        ({"failed": 1, "startTime": ago(5)}, {"suspend": False}),
        ({}, {"suspend": True}),
    ):
        job = {"metadata": {"name": "dj-abc", "uid": "j"}, "spec": spec, "status": job_status}
        cluster = FakeCluster(job=job, refusal=FORBIDDEN)
        phase = "Queued" if spec["suspend"] else "Processing"
        actions.reconcile(context(cluster), body({"phase": phase, "jobName": "dj-abc"}))
        assert cluster.refusals_asked == 0
        assert not [p for p in cluster.status_patches if p.get("phase") == "Failed"]


def test_only_refusals_that_waiting_does_not_cure_count() -> None:
    from downloadjobs_operator.cluster import refused

    assert refused(FORBIDDEN)
    quota = (
        'Error creating: pods "dj-abc-x" is forbidden: exceeded quota: compute, requested: cpu=1'
    )
    assert not refused(quota)
    assert not refused('Error creating: serviceaccounts "dj-worker" not found')


def job_of(name: str, **status: Any) -> dict[str, Any]:
    """A Job of DownloadJob ``abc`` as a watch shows it, unsuspended."""
    return {
        "metadata": {"name": name, "namespace": "ns", "labels": {model.LABEL_JOB_NAME: "abc"}},
        "spec": {"suspend": False},
        "status": status,
    }


def test_follow_writes_from_the_view_at_its_version_without_reading() -> None:
    cluster = FakeCluster()
    seen = cluster.add(body({"phase": "Queued", "jobName": "dj-abc"}))
    changed = actions.follow(context(cluster), job_of("dj-abc", active=1), seen)
    assert changed is not None and changed[1]["phase"] == "Processing"
    assert cluster.reads == 0
    assert cluster.bodies["abc"]["status"]["phase"] == "Processing"
    # the next sighting, with the view showing the write: nothing to do, nothing read
    later = actions.follow(
        context(cluster), job_of("dj-abc", active=1), cluster.downloadjob("ns", "abc")
    )
    assert later is None and len(cluster.status_patches) == 1


def test_follow_decides_again_from_the_resource_when_the_view_is_behind() -> None:
    cluster = FakeCluster()
    seen = cluster.add(body({"phase": "Queued", "jobName": "dj-abc"}))
    # cancelled meanwhile: the view still shows it queued
    cluster.patch_status("ns", "abc", {"phase": "Cancelled"})
    changed = actions.follow(context(cluster), job_of("dj-abc", active=1), seen)
    assert changed is None, "a terminal phase is never left, whatever the view said"
    assert cluster.status_conflicts == 1 and cluster.reads == 1
    assert cluster.bodies["abc"]["status"]["phase"] == "Cancelled"


def test_follow_reads_when_the_view_names_another_job() -> None:
    cluster = FakeCluster()
    seen = cluster.add(body({"phase": "Failed", "jobName": "dj-abc"}))
    # replayed: the view does not show the new Job's name yet
    cluster.patch_status("ns", "abc", {"phase": "Queued", "jobName": "dj-abc-r1"})
    changed = actions.follow(context(cluster), job_of("dj-abc-r1", active=1), seen)
    assert changed is not None and changed[1]["phase"] == "Processing"
    assert cluster.reads == 1
    assert actions.follow(context(cluster), job_of("dj-abc", active=1), None) is None


def test_follow_reads_a_leader_that_ended_before_settling_its_followers() -> None:
    cluster = FakeCluster()
    leader = body({"phase": "Cancelled", "jobName": "dj-abc"})
    leader["metadata"]["labels"] = {model.LABEL_CONTENT_KEY: "k"}
    seen = cluster.add(leader)
    done = job_of("dj-abc", conditions=[{"type": "Complete", "status": "True"}])
    assert actions.follow(context(cluster), done, seen) is None
    assert cluster.reads == 1, "its result may be newer than the view"


def test_reconcile_reads_the_job_from_the_view_and_asks_only_when_it_has_none() -> None:
    cluster = FakeCluster(job=None)  # asked, the API server would say it is gone
    ctx = context(cluster)
    seen = cluster.add(body({"phase": "Queued", "jobName": "dj-abc"}))
    job = admission.job_digest(job_of("dj-abc", active=1, startTime=ago(5)))
    assert actions.reconcile(ctx, seen, job) == ["DriftRepaired"]
    assert cluster.created == [] and cluster.bodies["abc"]["status"]["phase"] == "Processing"
    # the view's Job is another's (an earlier replay's): the API server is asked
    fresh = cluster.downloadjob("ns", "abc")
    fresh["status"]["jobName"] = "dj-abc-r1"
    assert actions.reconcile(ctx, fresh, job) == ["JobRecreated"]


def test_a_new_job_whose_job_the_view_lacks_is_left_to_its_creation_handler() -> None:
    """The view lags under load: a job younger than one interval is not looked up."""
    cluster = FakeCluster(job=None)
    ctx = context(cluster, reconcile_interval=30)
    young = body({"phase": "Queued", "jobName": "dj-abc"}, created=ago(5))
    assert actions.reconcile(ctx, young) == []
    assert cluster.created == []
    old = body({"phase": "Queued", "jobName": "dj-abc"}, created=ago(31))
    assert actions.reconcile(ctx, old) == ["JobRecreated"]
