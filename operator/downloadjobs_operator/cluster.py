"""
The operator's reads and writes on the Kubernetes API, as plain dicts.

A thin facade over the ``kubernetes`` client so the rest of the operator deals
in the same JSON shapes that the pure functions and the tests use.
"""

import datetime
import json
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from downloadjobs import kube, model

MANAGED = f"{model.LABEL_MANAGED_BY}={model.MANAGED_BY}"


def _dicts(response: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(response.data)["items"]
    return items


def refused(message: str) -> bool:
    """Whether a ``FailedCreate`` message is a refusal that waiting does not cure."""
    return " is forbidden: " in message and "exceeded quota" not in message


#: Seconds a stalled worker gets between SIGTERM and SIGKILL (a pod's default is 30).
STALLED_POD_GRACE_SECONDS = 5


class Cluster:
    def __init__(self) -> None:
        self.custom = kubernetes.client.CustomObjectsApi()
        self.batch = kubernetes.client.BatchV1Api()
        self.core = kubernetes.client.CoreV1Api()

    # DownloadJobs
    def downloadjobs(
        self, namespace: str, labels: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        selector = ",".join(f"{k}={v}" for k, v in (labels or {}).items())
        items: list[dict[str, Any]] = self.custom.list_namespaced_custom_object(
            model.GROUP, model.VERSION, namespace, model.PLURAL, label_selector=selector
        )["items"]
        return items

    def downloadjob(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            body: dict[str, Any] = self.custom.get_namespaced_custom_object(
                model.GROUP, model.VERSION, namespace, model.PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return body

    def patch_status(
        self, namespace: str, name: str, status: dict[str, Any], *, version: str | None = None
    ) -> bool:
        """
        Merge ``status`` in; with ``version``, only if the resource is still at that
        resourceVersion (False when it changed: decide again from what it is now).
        """
        patch: dict[str, Any] = {"status": status}
        if version:
            patch["metadata"] = {"resourceVersion": version}
        try:
            self.custom.patch_namespaced_custom_object_status(
                model.GROUP, model.VERSION, namespace, model.PLURAL, name, patch
            )
        except ApiException as exc:
            if version and exc.status == 409:
                return False
            raise
        return True

    def patch_metadata(
        self, namespace: str, name: str, metadata: dict[str, Any], *, version: str | None = None
    ) -> bool:
        """
        Merge ``metadata`` in; with ``version``, only if the resource is still at that
        resourceVersion (False when it changed: someone else acted on it meanwhile).
        """
        patch = {**metadata, "resourceVersion": version} if version else metadata
        try:
            self.custom.patch_namespaced_custom_object(
                model.GROUP, model.VERSION, namespace, model.PLURAL, name, {"metadata": patch}
            )
        except ApiException as exc:
            if version and exc.status == 409:
                return False
            raise
        return True

    def delete_downloadjob(self, namespace: str, name: str) -> None:
        try:
            self.custom.delete_namespaced_custom_object(
                model.GROUP, model.VERSION, namespace, model.PLURAL, name
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    def post_event_once(
        self, body: dict[str, Any], event_name: str, reason: str, message: str
    ) -> bool:
        """
        A Normal event on a DownloadJob under a fixed name: posting it again is a
        409, so it is told once however often a reconcile (or a new operator) asks.
        """
        meta = body["metadata"]
        now = model.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "metadata": {"name": event_name, "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": model.API_VERSION,
                "kind": model.KIND,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "reason": reason,
            "message": message,
            "type": "Normal",
            "source": {"component": "downloadjobs-operator"},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            kube.read_through(
                self.core.create_namespaced_event(meta["namespace"], event, _preload_content=False)
            )
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    # Jobs and pods
    def jobs(self, namespace: str) -> list[dict[str, Any]]:
        response = self.batch.list_namespaced_job(
            namespace, label_selector=MANAGED, _preload_content=False
        )
        return _dicts(response)

    def job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            response = self.batch.read_namespaced_job(name, namespace, _preload_content=False)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        body: dict[str, Any] = json.loads(response.data)
        return body

    def create_job(self, namespace: str, manifest: dict[str, Any]) -> bool:
        """Create a Job; False when it exists already (creation is idempotent)."""
        try:
            kube.read_through(
                self.batch.create_namespaced_job(namespace, manifest, _preload_content=False)
            )
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def unsuspend_job(self, namespace: str, name: str, admitted_at: str) -> bool:
        """Admit a Job; False when it is gone (cancelled meanwhile)."""
        try:
            patch = {
                "metadata": {"annotations": {model.ANNOTATION_ADMITTED_AT: admitted_at}},
                "spec": {"suspend": False},
            }
            kube.read_through(
                self.batch.patch_namespaced_job(name, namespace, patch, _preload_content=False)
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def pod_refusal(self, namespace: str, job: dict[str, Any]) -> str | None:
        """
        Why the API server refuses the pods of ``job``, when it does: the message of the
        Job controller's latest ``FailedCreate`` event that names a refusal (Pod
        Security, a LimitRange, an admission webhook), else None. A refusal for
        quota is not one: it passes when other pods end.
        """
        meta = job["metadata"]
        selector = ",".join(
            [
                "involvedObject.kind=Job",
                f"involvedObject.name={meta['name']}",
                f"involvedObject.uid={meta['uid']}",
                "reason=FailedCreate",
            ]
        )
        response = self.core.list_namespaced_event(
            namespace, field_selector=selector, _preload_content=False
        )
        events = sorted(
            _dicts(response),
            key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "",
        )
        for event in reversed(events):
            message = str(event.get("message") or "")
            if refused(message):
                return message
        return None

    def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job and, in the background, its pods."""
        try:
            self.batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise

    def delete_stalled_pods(
        self, namespace: str, job: str, started_before: datetime.datetime
    ) -> list[str]:
        """
        Delete the live pods of ``job`` created before ``started_before``.

        A replacement pod has not written a heartbeat yet: the job's heartbeat is
        the old pod's, so only pods older than the stall limit may be judged by it.
        A pod already terminating is not judged again. The grace period is short:
        a stalled worker answers no signal, and ``podReplacementPolicy: Failed``
        holds its replacement back until it is gone.
        """
        response = self.core.list_namespaced_pod(
            namespace, label_selector=f"job-name={job}", _preload_content=False
        )
        names = []
        for pod in _dicts(response):
            created = model.parse_time(pod["metadata"].get("creationTimestamp"))
            if created is None or created >= started_before:
                continue
            if pod["metadata"].get("deletionTimestamp"):
                continue
            if (pod.get("status") or {}).get("phase") in ("Pending", "Running", None):
                name = pod["metadata"]["name"]
                try:
                    response = self.core.delete_namespaced_pod(
                        name,
                        namespace,
                        grace_period_seconds=STALLED_POD_GRACE_SECONDS,
                        _preload_content=False,
                    )
                    kube.read_through(response)
                except ApiException as exc:
                    if exc.status != 404:
                        raise
                names.append(name)
        return names
