"""The Job built for a DownloadJob, and the status mapped back from the Job."""

import datetime
import itertools
from typing import Any

from downloadjobs import model
from downloadjobs.settings import S3Settings
from downloadjobs_operator import manifests
from downloadjobs_operator.settings import OperatorSettings
from downloadjobs_operator.status import conditions_for, phase_of_job, sighting, status_patch

BODY = {
    "metadata": {"name": "abc", "namespace": "team", "uid": "uid-1"},
    "spec": {"fileIds": [70000]},
}


def build(**overrides: Any) -> dict[str, Any]:
    settings = OperatorSettings(**overrides)
    return manifests.build_job(BODY, S3Settings(endpoint_url="http://s3:9000"), settings)


def test_job_name_is_deterministic_and_valid() -> None:
    assert manifests.job_name("abc") == "dj-abc"
    assert manifests.job_name("abc", 2) == "dj-abc-r2"
    assert len(manifests.job_name("x" * 80, 12)) <= 63
    long = manifests.job_name("x" * 80)
    assert len(long) <= 63 and not long.endswith("-")
    assert build()["metadata"]["name"] == "dj-abc"


def test_job_is_owned_by_the_downloadjob() -> None:
    (ref,) = build()["metadata"]["ownerReferences"]
    assert ref == {
        "apiVersion": model.API_VERSION,
        "kind": model.KIND,
        "name": "abc",
        "uid": "uid-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }


def test_job_limits_and_identity() -> None:
    spec = build(backoff_limit=2, active_deadline_seconds=120)["spec"]
    assert spec["backoffLimit"] == 2
    assert spec["activeDeadlineSeconds"] == 120
    assert spec["suspend"] is True, "created suspended; admission unsuspends it"
    assert spec["podReplacementPolicy"] == "Failed"
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "downloadjobs-worker"
    assert pod["restartPolicy"] == "Never"
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0]["action"] == "FailJob"
    assert rules[0]["onExitCodes"]["values"] == [model.EXIT_PERMANENT]
    assert rules[1]["action"] == "Ignore"


def test_worker_environment_names_its_job_and_s3_but_no_secret() -> None:
    container = build(s3_secret_name="s3")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["DOWNLOADJOBS_JOB_NAME"] == "abc"
    assert env["DOWNLOADJOBS_JOB_NAMESPACE"] == "team"
    assert env["DOWNLOADJOBS_S3_ENDPOINT_URL"] == "http://s3:9000"
    assert env["DOWNLOADJOBS_S3_PATH_STYLE"] == "false"
    assert not any("SECRET" in name or "AWS_" in name for name in env)
    assert container["envFrom"] == [{"secretRef": {"name": "s3"}}]


def test_worker_pod_is_restricted() -> None:
    pod = build()["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert set(container["resources"]) == {"requests", "limits"}


def job(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "dj-abc"}, "status": status}


def cond(kind: str, reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": kind, "status": "True", "reason": reason, "message": message}


def test_phase_follows_the_job() -> None:
    assert phase_of_job(job()) is model.Phase.QUEUED
    assert phase_of_job(job(active=1, startTime="t")) is model.Phase.PROCESSING
    assert phase_of_job(job(conditions=[cond("Complete")])) is model.Phase.COMPLETED
    assert phase_of_job(job(conditions=[cond("Failed")])) is model.Phase.FAILED
    assert phase_of_job(job(conditions=[cond("FailureTarget")])) is model.Phase.FAILED


def test_a_job_event_with_the_same_sighting_has_nothing_to_tell() -> None:
    """The operator skips such events; every one of them must yield no patch."""
    ready = cond("SuccessCriteriaMet")
    life = [  # one Job's events as the Job controller writes them, one pod failing once
        {"spec": {"suspend": True}, "status": {}},
        {"spec": {"suspend": False}, "status": {}},
        {"status": {"active": 1, "startTime": "2026-01-01T00:00:00Z"}},
        {"status": {"active": 1, "ready": 1, "startTime": "2026-01-01T00:00:00Z"}},
        {"status": {"uncountedTerminatedPods": {"failed": ["p1"]}, "startTime": "t"}},
        {"status": {"failed": 1, "startTime": "t"}},
        {"status": {"active": 1, "failed": 1, "startTime": "t"}},
        {"status": {"active": 1, "failed": 1, "ready": 1, "startTime": "t"}},
        {"status": {"uncountedTerminatedPods": {"succeeded": ["p2"]}, "failed": 1}},
        {"status": {"failed": 1, "succeeded": 1, "conditions": [ready]}},
        {"status": {"failed": 1, "succeeded": 1, "conditions": [ready, cond("Complete")]}},
    ]
    current = model.DownloadJobStatus(phase=model.Phase.QUEUED)
    skipped = 0
    for before, after in itertools.pairwise(life):
        before_job = {"metadata": {"name": "dj-abc"}, "spec": {}, **before}
        after_job = {"metadata": {"name": "dj-abc"}, "spec": {}, **after}
        patch = status_patch(before_job, current, NOW) or {}
        current = model.parse_status(
            {
                "status": {
                    **current.model_dump(by_alias=True, exclude_none=True, mode="json"),
                    **patch,
                }
            }
        )
        if sighting(after_job) == sighting(before_job):
            skipped += 1
            assert status_patch(after_job, current, NOW) is None, after
    assert skipped >= 4
    assert current.phase is model.Phase.COMPLETED and current.attempts == 2


NOW = datetime.datetime(2026, 1, 1, 0, 2, tzinfo=datetime.UTC)


def without_conditions(patch: dict[str, Any] | None) -> dict[str, Any]:
    assert patch is not None
    return {k: v for k, v in patch.items() if k != "conditions"}


def test_status_patch_on_transitions() -> None:
    queued = model.DownloadJobStatus(phase=model.Phase.QUEUED, queue_position=2)
    patch = status_patch(job(active=1, startTime="2026-01-01T00:00:00Z"), queued, NOW)
    assert without_conditions(patch) == {
        "phase": "Processing",
        "attempts": 1,
        "startedAt": "2026-01-01T00:00:00Z",
        "queuePosition": None,
    }
    assert patch is not None
    assert [(c["type"], c["status"]) for c in patch["conditions"]] == [("Admitted", "True")]

    processing = model.DownloadJobStatus(
        phase=model.Phase.PROCESSING, attempts=1, started_at="2026-01-01T00:00:00Z"
    )
    assert status_patch(job(active=1, startTime="x"), processing, NOW) is None

    done = status_patch(
        job(succeeded=1, completionTime="2026-01-01T00:01:00Z", conditions=[cond("Complete")]),
        processing,
        NOW,
    )
    assert without_conditions(done) == {
        "phase": "Completed",
        "completedAt": "2026-01-01T00:01:00Z",
        "progress": 100,
        "queuePosition": None,
    }


def test_a_suspended_job_is_still_queued() -> None:
    suspended = {"metadata": {"name": "dj-abc"}, "spec": {"suspend": True}, "status": {}}
    assert phase_of_job(suspended) is model.Phase.QUEUED


def test_conditions_follow_the_phase() -> None:
    earlier = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    queued = conditions_for(None, model.Phase.QUEUED, "Submitted", "waiting", earlier)
    assert queued == [
        {
            "type": "Queued",
            "status": "True",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
            "reason": "Submitted",
            "message": "waiting",
        },
    ]
    running = conditions_for(queued, model.Phase.PROCESSING, "JobAdmitted", "running", NOW)
    assert [(c["type"], c["status"], c["lastTransitionTime"]) for c in running] == [
        ("Queued", "False", "2026-01-01T00:02:00Z"),
        ("Admitted", "True", "2026-01-01T00:02:00Z"),
    ]
    assert running[0]["reason"] == "JobAdmitted", "a False condition says why, too"
    again = conditions_for(running, model.Phase.PROCESSING, "JobAdmitted", "still", NOW)
    assert again[1]["lastTransitionTime"] == "2026-01-01T00:02:00Z"
    assert again[1]["message"] == "still"


def test_failure_keeps_the_workers_reason_or_takes_the_jobs() -> None:
    processing = model.DownloadJobStatus(phase=model.Phase.PROCESSING, attempts=4)
    failed = job(failed=4, conditions=[cond("Failed", "BackoffLimitExceeded", "too many")])
    patch = status_patch(failed, processing)
    assert patch is not None
    assert patch["error"] == {"reason": "BackoffLimitExceeded", "message": "too many"}

    explained = model.DownloadJobStatus(
        phase=model.Phase.PROCESSING,
        error=model.JobError(reason="AllFilesMissing", message="none"),
    )
    patch = status_patch(failed, explained)
    assert patch is not None and "error" not in patch


def test_terminal_phases_are_never_left() -> None:
    done = model.DownloadJobStatus(phase=model.Phase.COMPLETED)
    assert status_patch(job(active=1, startTime="x"), done) is None


def test_attempts_count_pods_the_job_controller_has_not_counted_yet() -> None:
    """
    kube-controller-manager marks a Job complete while its last pod still sits in
    ``uncountedTerminatedPods``: a retried job must not finish with one attempt.
    """
    job = {
        "metadata": {"name": "dj-x"},
        "status": {
            "failed": 1,
            "uncountedTerminatedPods": {"succeeded": ["uid-2"]},
            "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True"},
                {"type": "Complete", "status": "True"},
            ],
        },
    }
    processing = model.DownloadJobStatus(phase=model.Phase.PROCESSING, attempts=2)
    patch = status_patch(job, processing)
    assert patch is not None and patch["phase"] == "Completed"
    assert "attempts" not in patch, "2 attempts stay 2"
    past_deadline = {
        "metadata": {"name": "dj-x"},
        "status": {
            "failed": 1,
            "terminating": 1,  # the same pod, still stopping
            "startTime": "x",
            "conditions": [{"type": "FailureTarget", "status": "True"}],
        },
    }
    first = model.DownloadJobStatus(phase=model.Phase.PROCESSING, attempts=1, started_at=NOW)
    patch = status_patch(past_deadline, first)
    assert patch is not None and "attempts" not in patch
