"""
The DownloadJob's phase as a pure function of its Job's status.

The Job controller's own words are the source of truth: a ``Complete`` or
``Failed`` condition ends the job; an active pod means it is processing; a
suspended Job is still waiting for admission.
"""

import datetime
from typing import Any

from downloadjobs import model, resource

#: The condition each phase sets to True (and the others to False), so that
#: ``kubectl describe`` and ``kubectl wait --for=condition=Complete`` work.
CONDITION_OF_PHASE = {
    model.Phase.QUEUED: "Queued",
    model.Phase.PROCESSING: "Admitted",
    model.Phase.COMPLETED: "Complete",
    model.Phase.FAILED: "Failed",
    model.Phase.CANCELLED: "Cancelled",
}


def _condition(job_status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in job_status.get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return dict(cond)
    return None


def phase_of_job(job: dict[str, Any]) -> model.Phase:
    status = job.get("status") or {}
    if _condition(status, "Complete") or _condition(status, "SuccessCriteriaMet"):
        return model.Phase.COMPLETED
    if _condition(status, "Failed") or _condition(status, "FailureTarget"):
        return model.Phase.FAILED
    if job.get("spec", {}).get("suspend"):
        return model.Phase.QUEUED
    if status.get("active") or status.get("startTime"):
        return model.Phase.PROCESSING
    return model.Phase.QUEUED


def conditions_for(
    current: list[dict[str, Any]] | None,
    phase: model.Phase,
    reason: str,
    message: str,
    now: datetime.datetime,
) -> list[dict[str, Any]]:
    """
    The conditions after entering ``phase``: its condition True, the earlier ones
    False; ``lastTransitionTime`` moves only when a condition's status changes.
    """
    by_type = {c["type"]: dict(c) for c in current or []}
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    for kind in CONDITION_OF_PHASE.values():
        wanted = "True" if kind == CONDITION_OF_PHASE[phase] else "False"
        old = by_type.get(kind)
        if old is None and wanted == "False":
            continue
        if old is None or old.get("status") != wanted:
            by_type[kind] = {"type": kind, "status": wanted, "lastTransitionTime": stamp}
            if wanted == "False":  # Kubernetes conditions always say why
                by_type[kind].update(reason=reason, message=f"The job is {phase.value} now.")
        if wanted == "True":
            by_type[kind].update(reason=reason, message=message)
    order = list(CONDITION_OF_PHASE.values())
    return sorted(
        by_type.values(), key=lambda c: order.index(c["type"]) if c["type"] in order else 99
    )


def transition(
    current: model.DownloadJobStatus,
    phase: model.Phase,
    reason: str,
    message: str,
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    """The status fields that record entering ``phase`` (conditions included)."""
    now = now or model.utcnow()
    raw = [c.to_wire() for c in current.conditions or []]
    fields: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions_for(raw, phase, reason, message, now),
    }
    if phase is not model.Phase.QUEUED:
        fields["queue_position"] = None
    return resource.status_patch(**fields)


def attempts_of(job_status: dict[str, Any]) -> int:
    """
    Pods the Job has started so far, wherever the Job controller counts them now.

    A pod moves from ``active`` through ``uncountedTerminatedPods`` into ``failed``
    or ``succeeded``; the Job can be complete while its last pod is still uncounted,
    so each place counts. ``terminating`` does not: a Job past its deadline counts
    its deleted pod as failed while the pod still terminates.
    """
    uncounted = job_status.get("uncountedTerminatedPods") or {}
    counted = sum(int(job_status.get(k) or 0) for k in ("active", "failed", "succeeded"))
    return counted + len(uncounted.get("failed") or []) + len(uncounted.get("succeeded") or [])


def sighting(job: dict[str, Any]) -> tuple[model.Phase, int]:
    """
    What of a Job its DownloadJob's status follows. Most of a Job's events change
    nothing of it (the Job controller writes ready counts, finalizers, uncounted
    pods…): an event that leaves it as the last one did has nothing to tell.
    """
    return phase_of_job(job), attempts_of(job.get("status") or {})


def failures_of(job_status: dict[str, Any]) -> int:
    """Failed pods of a Job, counted or not yet counted by the Job controller."""
    uncounted = job_status.get("uncountedTerminatedPods") or {}
    return int(job_status.get("failed") or 0) + len(uncounted.get("failed") or [])


def status_patch(
    job: dict[str, Any], current: model.DownloadJobStatus, now: datetime.datetime | None = None
) -> dict[str, Any] | None:
    """
    The status patch that brings a DownloadJob in line with its Job, or None.

    Terminal phases are never left: a late event of an older pod must not
    turn a completed job back into a processing one.
    """
    if current.phase is not None and current.phase.terminal:
        return None
    now = now or model.utcnow()
    job_status = job.get("status") or {}
    phase = phase_of_job(job)
    attempts = attempts_of(job_status)
    patch: dict[str, Any] = {}
    if phase != current.phase:
        reason, message = _why(job, phase)
        patch.update(transition(current, phase, reason, message, now))
    fields: dict[str, Any] = {}
    if attempts > (current.attempts or 0):
        fields["attempts"] = attempts
    if phase is not model.Phase.QUEUED and current.started_at is None:
        fields["started_at"] = job_status.get("startTime") or now.isoformat()
    if phase.terminal:
        fields["completed_at"] = job_status.get("completionTime") or now.isoformat()
    if phase is model.Phase.COMPLETED:
        fields["progress"] = 100
    if phase is model.Phase.FAILED and current.error is None:
        cond = _condition(job_status, "Failed") or _condition(job_status, "FailureTarget") or {}
        fields["error"] = model.JobError(
            reason=cond.get("reason") or "JobFailed",
            message=cond.get("message") or "the worker Job failed",
        )
    patch.update(resource.status_patch(**fields))
    return patch or None


def _why(job: dict[str, Any], phase: model.Phase) -> tuple[str, str]:
    name = job.get("metadata", {}).get("name", "")
    job_status = job.get("status") or {}
    if phase is model.Phase.FAILED:
        cond = _condition(job_status, "Failed") or _condition(job_status, "FailureTarget") or {}
        return cond.get("reason") or "JobFailed", cond.get("message") or f"Job {name} failed."
    if phase is model.Phase.COMPLETED:
        return "JobComplete", f"Job {name} completed."
    if phase is model.Phase.PROCESSING:
        return "JobAdmitted", f"Job {name} is running."
    return "Waiting", f"Job {name} waits for a free slot."
