"""
The DownloadJob's phase as a pure function of its Job's status.

The Job controller's own words are the source of truth: a ``Complete`` or
``Failed`` condition ends the job; an active pod means it is processing.
"""

from typing import Any

from downloadjobs import model


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
    if status.get("active") or status.get("startTime"):
        return model.Phase.PROCESSING
    return model.Phase.QUEUED


def status_patch(job: dict[str, Any], current: model.DownloadJobStatus) -> dict[str, Any] | None:
    """
    The status patch that brings a DownloadJob in line with its Job, or None.

    Terminal phases are never left: a late event of an older pod must not
    turn a completed job back into a processing one.
    """
    if current.phase is not None and current.phase.terminal:
        return None
    job_status = job.get("status") or {}
    phase = phase_of_job(job)
    attempts = int(job_status.get("failed") or 0) + int(job_status.get("succeeded") or 0)
    attempts += int(job_status.get("active") or 0)
    patch: dict[str, Any] = {}
    if phase != current.phase:
        patch["phase"] = phase.value
    if attempts and attempts != current.attempts:
        patch["attempts"] = attempts
    if phase is not model.Phase.QUEUED and current.started_at is None:
        patch["startedAt"] = job_status.get("startTime") or model.utcnow().isoformat()
    if phase.terminal:
        patch["completedAt"] = job_status.get("completionTime") or model.utcnow().isoformat()
    if phase is model.Phase.COMPLETED:
        patch["progress"] = 100
    if phase is model.Phase.FAILED and current.error is None:
        cond = _condition(job_status, "Failed") or _condition(job_status, "FailureTarget") or {}
        patch["error"] = {
            "reason": cond.get("reason") or "JobFailed",
            "message": cond.get("message") or "the worker Job failed",
        }
    return patch or None
