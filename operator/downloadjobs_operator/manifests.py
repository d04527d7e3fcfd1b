"""
The Job that carries out one DownloadJob, as a pure function of the two.

Nothing here talks to a server: the handlers call :func:`build_job` and send
its result, and the unit tests call it directly.
"""

from typing import Any

from downloadjobs import model, resource
from downloadjobs.settings import S3Settings
from downloadjobs_operator.settings import (
    DEFAULT_CONTAINER_SECURITY_CONTEXT,
    DEFAULT_POD_SECURITY_CONTEXT,
    OperatorSettings,
)

#: The securityContexts of worker pods unless the chart passes its own: the
#: ``restricted`` Pod Security Standard (see settings.py).
POD_SECURITY_CONTEXT = DEFAULT_POD_SECURITY_CONTEXT
CONTAINER_SECURITY_CONTEXT = DEFAULT_CONTAINER_SECURITY_CONTEXT


def job_name(downloadjob_name: str, replay: int = 0) -> str:
    """
    The Job's name: derived from the DownloadJob's (and its replay count), so
    creating it twice is a 409, never a second Job.
    """
    suffix = f"-r{replay}" if replay else ""
    return f"dj-{downloadjob_name}"[: 63 - len(suffix)].rstrip("-") + suffix


def worker_env(
    body: dict[str, Any], s3: S3Settings, settings: OperatorSettings
) -> list[dict[str, Any]]:
    meta = body["metadata"]
    env: dict[str, str] = {
        "DOWNLOADJOBS_JOB_NAME": meta["name"],
        "DOWNLOADJOBS_JOB_NAMESPACE": meta["namespace"],
    }
    if traceparent := (meta.get("annotations") or {}).get(model.ANNOTATION_TRACEPARENT):
        env["TRACEPARENT"] = traceparent  # the W3C trace of the request that created the job
    env.update(s3.environment())
    env.update(settings.worker_env)
    return [{"name": k, "value": v} for k, v in sorted(env.items())]


def build_job(body: dict[str, Any], s3: S3Settings, settings: OperatorSettings) -> dict[str, Any]:
    """The ``batch/v1`` Job for a DownloadJob ``body`` (as read from the API server)."""
    meta = body["metadata"]
    replay = resource.replays(body)
    name = job_name(meta["name"], replay)
    labels = {
        model.LABEL_MANAGED_BY: model.MANAGED_BY,
        model.LABEL_JOB_NAME: meta["name"],
        "app.kubernetes.io/component": "worker",
    }
    container: dict[str, Any] = {
        "name": "worker",
        "image": settings.worker_image,
        "imagePullPolicy": settings.worker_image_pull_policy,
        "command": list(settings.worker_command),
        "env": worker_env(body, s3, settings),
        "securityContext": settings.container_security_context,
        "resources": {
            "requests": {"cpu": settings.cpu_request, "memory": settings.memory_request},
            "limits": {"cpu": settings.cpu_limit, "memory": settings.memory_limit},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if settings.s3_secret_name:
        container["envFrom"] = [{"secretRef": {"name": settings.s3_secret_name}}]
    pod_extras: dict[str, Any] = {}
    if settings.image_pull_secrets:
        pod_extras["imagePullSecrets"] = settings.image_pull_secrets
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": model.API_VERSION,
                    "kind": model.KIND,
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            # Created suspended; admission (see admission.py) unsuspends it when a slot is
            # free (or the creation handler creates it unsuspended: queue.admit_at_once).
            # Kueue, where installed, admits through the same field.
            "suspend": True,
            "backoffLimit": settings.backoff_limit,
            # A replacement pod starts only once the old one has failed for good, so two
            # workers never upload the same bundle at once.
            "podReplacementPolicy": "Failed",
            "activeDeadlineSeconds": settings.active_deadline_seconds,
            "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": "worker",
                            "operator": "In",
                            "values": [model.EXIT_PERMANENT],
                        },
                    },
                    {
                        "action": "Ignore",
                        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                    },
                ]
            },
            "completions": 1,
            "parallelism": 1,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": settings.worker_service_account,
                    "automountServiceAccountToken": True,
                    "securityContext": settings.pod_security_context,
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                    **pod_extras,
                },
            },
        },
    }
