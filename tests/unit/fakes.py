"""Fakes of the Kubernetes client that unit tests share (no test module imports another)."""

from typing import Any

from kubernetes.client.exceptions import ApiException


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
