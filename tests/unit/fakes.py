"""Fakes of the Kubernetes client that unit tests share (no test module imports another)."""

import copy
import datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from downloadjobs import model


class FakeCustomObjects:
    """Just enough of CustomObjectsApi: a dict of bodies by name."""

    def __init__(self) -> None:
        self.created: dict[str, dict[str, Any]] = {}

    def create_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        body: dict[str, Any] = args[-1]
        if body["metadata"]["name"] in self.created:
            raise ApiException(status=409, reason="AlreadyExists")
        self.created[body["metadata"]["name"]] = body
        return body

    def get_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        name = args[-1]
        if name not in self.created:
            raise ApiException(status=404, reason="Not Found")
        return self.created[name]

    def list_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"items": list(self.created.values())}

    def patch_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        name, patch = args[-2], args[-1]
        body = self.created[name]
        annotations = body["metadata"].setdefault("annotations", {})
        annotations.update(patch["metadata"]["annotations"])
        return body


class FakeCluster:
    """
    Just enough of the operator's :class:`~downloadjobs_operator.cluster.Cluster`:
    DownloadJobs and Jobs in dicts, labels selected as the API server selects them,
    resourceVersions that move, and every write recorded. ``job``, when given (None
    too), is what every Job lookup answers, whatever was created; ``refusal`` what the
    API server said of the Job's pod.
    """

    def __init__(self, job: Any = ..., refusal: str | None = None) -> None:
        self.bodies: dict[str, dict[str, Any]] = {}
        self.job_bodies: dict[str, dict[str, Any]] = {}
        self.fixed_job = job is not ...  # every lookup answers ``job``, created or not
        self.job_body: dict[str, Any] | None = None if job is ... else job
        self.refusal = refusal
        self.refusals_asked = 0
        self.conflicts = 0  # versioned metadata patches to refuse, as if someone wrote first
        self.status_conflicts = 0  # versioned status patches refused: the version had moved
        self.reads = 0  # DownloadJobs read one by one
        self.deleted: list[str] = []
        self.pods_deleted: list[str] = []
        self.created: list[dict[str, Any]] = []
        self.status_patches: list[dict[str, Any]] = []
        self.metadata_patches: list[dict[str, Any]] = []
        self.jobs_deleted: list[str] = []
        self.unsuspended: list[str] = []
        self.events: list[tuple[str, str, str]] = []
        self.started_before: datetime.datetime | None = None

    @property
    def created_names(self) -> list[str]:
        return [m["metadata"]["name"] for m in self.created]

    # DownloadJobs
    def add(self, body: dict[str, Any]) -> dict[str, Any]:
        body["metadata"].setdefault("resourceVersion", "1")
        self.bodies[body["metadata"]["name"]] = body
        return copy.deepcopy(body)

    def downloadjobs(self, namespace: str, labels: dict[str, str] | None = None) -> list[Any]:
        def selected(body: dict[str, Any]) -> bool:
            have = body["metadata"].get("labels") or {}
            return all(have.get(k) == v for k, v in (labels or {}).items())

        return [copy.deepcopy(b) for b in self.bodies.values() if selected(b)]

    def downloadjob(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads += 1
        return copy.deepcopy(self.bodies.get(name))

    def _bump(self, body: dict[str, Any]) -> None:
        body["metadata"]["resourceVersion"] = str(int(body["metadata"]["resourceVersion"]) + 1)

    def patch_metadata(
        self, namespace: str, name: str, patch: dict[str, Any], *, version: str | None = None
    ) -> bool:
        body = self.bodies.get(name)
        moved = body is not None and version != body["metadata"]["resourceVersion"]
        if version is not None and (self.conflicts or moved):
            self.conflicts = max(self.conflicts - 1, 0)
            return False
        self.metadata_patches.append(patch)
        if body is not None:
            for field in ("labels", "annotations"):
                merged = {**(body["metadata"].get(field) or {}), **patch.get(field, {})}
                body["metadata"][field] = {k: v for k, v in merged.items() if v is not None}
            self._bump(body)
        return True

    def patch_status(
        self, namespace: str, name: str, status: dict[str, Any], *, version: str | None = None
    ) -> bool:
        body = self.bodies.get(name)
        if (
            version is not None
            and body is not None
            and version != body["metadata"]["resourceVersion"]
        ):
            self.status_conflicts += 1
            return False
        self.status_patches.append(status)
        if body is not None:
            merged = {**(body.get("status") or {}), **status}
            body["status"] = {k: v for k, v in merged.items() if v is not None}
            self._bump(body)
        return True

    def delete_downloadjob(self, namespace: str, name: str) -> None:
        self.deleted.append(name)

    def post_event_once(self, body: dict[str, Any], name: str, reason: str, message: str) -> bool:
        self.events.append((name, reason, message))
        return name not in [e[0] for e in self.events[:-1]]  # the API server's 409

    # Jobs and pods
    def jobs(self, namespace: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(j) for j in self.job_bodies.values()]

    def job(self, namespace: str, name: str) -> dict[str, Any] | None:
        if self.fixed_job:
            return self.job_body
        return copy.deepcopy(self.job_bodies.get(name))

    def create_job(self, namespace: str, manifest: dict[str, Any]) -> bool:
        self.created.append(manifest)
        stored = {**manifest, "metadata": {**manifest["metadata"], "namespace": namespace}}
        self.job_bodies.setdefault(manifest["metadata"]["name"], copy.deepcopy(stored))
        return True

    def delete_job(self, namespace: str, name: str) -> None:
        self.job_bodies.pop(name, None)
        self.jobs_deleted.append(name)

    def unsuspend_job(self, namespace: str, name: str, admitted_at: str) -> bool:
        job = self.job_bodies[name]
        job["metadata"].setdefault("annotations", {})[model.ANNOTATION_ADMITTED_AT] = admitted_at
        job["spec"]["suspend"] = False
        self.unsuspended.append(name)
        return True

    def end_job(self, name: str, condition: str) -> dict[str, Any]:
        """The Job controller's word: ``condition`` (Complete, Failed) is True now."""
        job = self.job_bodies[name]
        job["status"] = {"conditions": [{"type": condition, "status": "True"}]}
        return copy.deepcopy(job)

    def pod_refusal(self, namespace: str, job: dict[str, Any]) -> str | None:
        self.refusals_asked += 1
        return self.refusal

    def delete_stalled_pods(
        self, namespace: str, job: str, started_before: datetime.datetime
    ) -> list[str]:
        self.pods_deleted.append(job)
        self.started_before = started_before
        return [f"{job}-abcde"]
