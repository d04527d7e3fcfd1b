"""
The kopf handlers: thin glue between events and the pure functions.

A new DownloadJob gets its Job (:mod:`manifests`); every change of a Job is
mapped onto its DownloadJob's status (:mod:`status`). Kopf keeps its own
bookkeeping in annotations, because the API server prunes status fields that
the CRD does not declare.
"""

import logging
from typing import Any

import kopf
import kubernetes
from kubernetes.client.exceptions import ApiException

from downloadjobs import kube, model
from downloadjobs.settings import S3Settings
from downloadjobs_operator import manifests
from downloadjobs_operator.settings import OperatorSettings
from downloadjobs_operator.status import status_patch

MANAGED_JOBS = {model.LABEL_MANAGED_BY: model.MANAGED_BY}


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    kube.load_config()
    prefix = f"operator.{model.GROUP}"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=prefix)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=prefix)
    settings.persistence.finalizer = f"{prefix}/finalizer"
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    memo.s3 = S3Settings()
    memo.operator = OperatorSettings()


@kopf.on.create(model.GROUP, model.VERSION, model.PLURAL)
def create_job(
    body: kopf.Body,
    namespace: str | None,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """Create the one Job of a new DownloadJob; a Job already there (409) is that Job."""
    manifest = manifests.build_job(dict(body), memo.s3, memo.operator)
    name = manifest["metadata"]["name"]
    try:
        kubernetes.client.BatchV1Api().create_namespaced_job(namespace, manifest)
    except ApiException as exc:
        if exc.status != 409:
            raise kopf.TemporaryError(f"creating Job {name}: {exc.reason}", delay=5) from exc
        logger.info("Job %s exists already; adopting it.", name)
    else:
        kopf.info(body, reason="JobCreated", message=f"Created Job {name}.")
    if not body.get("status", {}).get("phase"):
        patch.status["phase"] = model.Phase.QUEUED.value
        patch.status["filesTotal"] = len(body["spec"]["fileIds"])
    patch.status["jobName"] = name


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED_JOBS)
def follow_job(event: kopf.RawEvent, body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """Mirror a Job's state onto its DownloadJob, with an event on each transition."""
    if event["type"] == "DELETED":
        return
    owner = body.get("metadata", {}).get("labels", {}).get(model.LABEL_JOB_NAME)
    namespace = body.get("metadata", {}).get("namespace")
    if not owner or not namespace:
        return
    api = kubernetes.client.CustomObjectsApi()
    try:
        current = api.get_namespaced_custom_object(
            model.GROUP, model.VERSION, namespace, model.PLURAL, owner
        )
    except ApiException as exc:
        if exc.status == 404:
            return  # the DownloadJob is gone; garbage collection takes the Job
        raise
    patch = status_patch(dict(body), model.parse_status(current))
    if patch is None:
        return
    api.patch_namespaced_custom_object_status(
        model.GROUP, model.VERSION, namespace, model.PLURAL, owner, {"status": patch}
    )
    if "phase" in patch:
        phase = patch["phase"]
        message = f"Job {body['metadata']['name']} is {phase.lower()}."
        if "error" in patch:
            message += f" {patch['error']['message']}"
        logger.info("DownloadJob %s/%s: %s", namespace, owner, message)
        emit = kopf.warn if phase == model.Phase.FAILED.value else kopf.info
        emit(kopf.Body(current), reason=phase, message=message)
