"""
Admission: which queued jobs may start now, as a pure function of the cluster state.

A Job is created suspended (``spec.suspend: true``) and admitting a job means
unsuspending its Job, unless a slot is free for it at once (``queue.admit_at_once``).
Jobs are admitted first-in first-out, up to a cap of running Jobs per namespace and,
optionally, per owner. A cluster that runs Kueue can take this over instead: its
admission works on the same field.
"""

import collections
import copy
import dataclasses
from collections.abc import Iterable
from typing import Any

from downloadjobs import model

#: Set by the API at submission, to the microsecond: a stricter FIFO key than
#: ``creationTimestamp``, which has only seconds.
SUBMITTED_AT = model.ANNOTATION_SUBMITTED_AT


@dataclasses.dataclass(frozen=True)
class Waiting:
    """
    A queued DownloadJob whose Job is suspended, or (not ``ready``) whose creation
    handler has not created its Job yet: nobody overtakes it meanwhile.
    """

    name: str
    owner: str
    order: tuple[str, str, str]
    ready: bool = True


@dataclasses.dataclass(frozen=True)
class Plan:
    admit: list[str]
    positions: dict[str, int]


def order_key(body: dict[str, Any]) -> tuple[str, str, str]:
    meta = body.get("metadata", {})
    submitted = (meta.get("annotations") or {}).get(SUBMITTED_AT, "")
    return (meta.get("creationTimestamp", ""), submitted, meta.get("name", ""))


#: What of a Job's status a reconcile reads (:func:`status.status_patch`, stalls, refusals).
DIGEST_STATUS = (
    "active",
    "failed",
    "succeeded",
    "terminating",
    "startTime",
    "completionTime",
    "uncountedTerminatedPods",
)


def job_digest(job: dict[str, Any]) -> dict[str, Any]:
    """What an admission pass and a reconcile read of a Job (its name, labels, suspension,
    pods and end), and all an operator keeps of each: not its pod template."""
    meta = job.get("metadata", {})
    status = job.get("status") or {}
    digest = {k: copy.deepcopy(status[k]) for k in DIGEST_STATUS if k in status}
    return {
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "labels": dict(meta.get("labels") or {}),
        },
        "spec": {"suspend": (job.get("spec") or {}).get("suspend")},
        "status": {**digest, "conditions": [dict(c) for c in status.get("conditions") or []]},
    }


def job_finished(job: dict[str, Any]) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions
    )


def job_running(job: dict[str, Any]) -> bool:
    """Admitted and not finished: it holds a slot."""
    return not job.get("spec", {}).get("suspend") and not job_finished(job)


def plan(
    waiting: Iterable[Waiting],
    running_owners: Iterable[str],
    max_running: int,
    max_running_per_owner: int = 0,
) -> Plan:
    """
    Admit the oldest waiting jobs into the free slots; number the rest 1, 2, 3 ….

    ``running_owners`` has one entry per running Job (its owner). A job whose
    owner is at the per-owner cap is skipped, not blocking the ones behind it. A job
    not ``ready`` (no Job yet) does block them, for first in first out: it keeps its
    place in the numbering, but gets no number written, as it has no Job to admit.
    """
    queue = sorted(waiting, key=lambda w: w.order)
    per_owner = collections.Counter(running_owners)
    free = max_running - sum(per_owner.values())
    admit: list[str] = []
    positions: dict[str, int] = {}
    ahead = 0
    held = False
    for item in queue:
        held = held or not item.ready
        owner_full = max_running_per_owner and per_owner[item.owner] >= max_running_per_owner
        if free > 0 and not owner_full and not held:
            admit.append(item.name)
            per_owner[item.owner] += 1
            free -= 1
            continue
        ahead += 1
        if item.ready:
            positions[item.name] = ahead
    return Plan(admit=admit, positions=positions)
