"""
What a kubelet derives from a pod spec, as pure functions: environment and status.

The node agent (:mod:`downloadjobs_embedded.nodeagent`) does the I/O; everything
here takes the pod as the API server stored it and returns plain data, so unit
tests can check the rules without a server.
"""

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

#: A reference ``$(NAME)`` in env values, command and args; ``$$`` escapes a ``$``.
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")

#: Reads one key of a Secret or ConfigMap: (kind, namespace, name, key) → value or None.
KeyLookup = Callable[[str, str, str, str | None], Any]


class ConfigError(Exception):
    """The container cannot start yet: the kubelet's ``CreateContainerConfigError``."""


def now(micro: bool = False) -> str:
    """A timestamp as the API server stores it (``MicroTime`` when ``micro``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def expand(value: str, env: Mapping[str, str]) -> str:
    """Expand ``$(VAR)`` as the kubelet does: unknown references stay as written."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _REFERENCE.sub(replace, value)


def _field(pod: Mapping[str, Any], path: str) -> str:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP"),
        "status.podIP": status.get("podIP"),
    }
    if path in simple:
        return str(simple[path] or "")
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise ConfigError(f"unsupported fieldRef {path!r}")


def _value_from(pod: Mapping[str, Any], source: Mapping[str, Any], lookup: KeyLookup) -> str | None:
    namespace = pod["metadata"]["namespace"]
    for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
        if ref := source.get(key):
            value = lookup(kind, namespace, ref["name"], ref["key"])
            if value is None:
                if ref.get("optional"):
                    return None
                raise ConfigError(f"{kind.lower()} {ref['name']!r} has no key {ref['key']!r}")
            return str(value)
    if ref := source.get("fieldRef"):
        return _field(pod, ref["fieldPath"])
    raise ConfigError(f"unsupported valueFrom {sorted(source)}")


def container_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    lookup: KeyLookup,
    base: Mapping[str, str],
) -> dict[str, str]:
    """
    The environment of ``container``: ``base`` (what the image would set), then
    ``envFrom`` in order, then ``env`` in order with ``$(VAR)`` expansion.
    """
    env = dict(base)
    namespace = pod["metadata"]["namespace"]
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix") or ""
        for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
            if ref := source.get(key):
                data = lookup(kind, namespace, ref["name"], None)
                if data is None:
                    if ref.get("optional"):
                        continue
                    raise ConfigError(f"{kind.lower()} {ref['name']!r} not found")
                env.update({prefix + k: str(v) for k, v in data.items()})
    for item in container.get("env") or []:
        if "valueFrom" in item:
            value = _value_from(pod, item["valueFrom"], lookup)
            if value is not None:
                env[item["name"]] = value
        else:
            env[item["name"]] = expand(item.get("value") or "", env)
    return env


def container_argv(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """``command`` then ``args``, expanded; an image's entrypoint is not known here."""
    argv = [*(container.get("command") or []), *(container.get("args") or [])]
    if not argv:
        raise ConfigError("the node agent runs no images: the container needs a command")
    return [expand(arg, env) for arg in argv]


def token_projection(pod: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The projected service-account token volume that admission added, if any."""
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "serviceAccountToken" in source:
                return volume["name"], source["serviceAccountToken"]
    return None


def _conditions(ready: bool, reason: str | None, at: str) -> list[dict[str, Any]]:
    conditions = []
    for kind, status in (
        ("PodReadyToStartContainers", True),
        ("Initialized", True),
        ("ContainersReady", ready),
        ("Ready", ready),
    ):
        condition = {"type": kind, "status": "True" if status else "False"}
        condition["lastTransitionTime"] = at
        if not status and reason:
            condition["reason"] = reason
        conditions.append(condition)
    return conditions


def _container_status(
    pod: Mapping[str, Any],
    state: dict[str, Any],
    restart_count: int,
    container_id: str | None,
    last_exit: dict[str, Any] | None,
) -> dict[str, Any]:
    """The one container's entry of ``containerStatuses``, ``state`` being its now."""
    container = pod["spec"]["containers"][0]
    running = "running" in state
    status: dict[str, Any] = {
        "name": container["name"],
        "image": container.get("image") or "",
        "imageID": "",
        "ready": running,
        "started": running,
        "restartCount": restart_count,
        "state": state,
    }
    if container_id:
        status["containerID"] = container_id
    if last_exit:
        status["lastState"] = {"terminated": last_exit}
    return status


def running_status(
    pod: Mapping[str, Any],
    ip: str,
    started_at: str,
    restart_count: int,
    container_id: str,
    last_exit: dict[str, Any] | None = None,
) -> dict[str, Any]:
    state = {"running": {"startedAt": started_at}}
    return {
        "phase": "Running",
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": (pod.get("status") or {}).get("startTime") or started_at,
        "conditions": _conditions(True, None, started_at),
        "containerStatuses": [
            _container_status(pod, state, restart_count, container_id, last_exit)
        ],
    }


def terminated_state(code: int, started_at: str, container_id: str) -> dict[str, Any]:
    return {
        "exitCode": code,
        "reason": "Completed" if code == 0 else "Error",
        "startedAt": started_at,
        "finishedAt": now(),
        "containerID": container_id,
    }


def final_phase(pod: Mapping[str, Any], code: int) -> str:
    """The phase of a pod whose only container ended with ``code`` and will not restart."""
    policy = pod["spec"].get("restartPolicy") or "Always"
    return "Succeeded" if code == 0 and policy != "Always" else "Failed"


def restarts(pod: Mapping[str, Any], code: int) -> bool:
    """Whether the kubelet restarts a container that ended with ``code``."""
    policy = pod["spec"].get("restartPolicy") or "Always"
    return policy == "Always" or (policy == "OnFailure" and code != 0)


def terminated_status(
    pod: Mapping[str, Any], terminated: dict[str, Any], restart_count: int, phase: str
) -> dict[str, Any]:
    state = {"terminated": terminated}
    return {
        "phase": phase,
        "conditions": _conditions(False, "PodCompleted", terminated["finishedAt"]),
        "containerStatuses": [
            _container_status(pod, state, restart_count, terminated["containerID"], None)
        ],
    }


def waiting_status(
    pod: Mapping[str, Any],
    reason: str,
    message: str,
    restart_count: int = 0,
    last_exit: dict[str, Any] | None = None,
) -> dict[str, Any]:
    state = {"waiting": {"reason": reason, "message": message}}
    return {
        "conditions": _conditions(False, "ContainersNotReady", now()),
        "containerStatuses": [_container_status(pod, state, restart_count, None, last_exit)],
    }
