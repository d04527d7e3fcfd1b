"""
What end-to-end tests share beside HTTP: a stack with a module's own settings,
waiting for a condition, and what a finished-off job might leave behind.
"""

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from downloadjobs import s3
from downloadjobs_embedded import s3server
from downloadjobs_embedded.stack import Stack


@contextlib.contextmanager
def running_stack(
    factory: pytest.TempPathFactory,
    name: str,
    *,
    delay_ms: tuple[int, int] = (0, 0),
    operator: dict[str, str] | None = None,
    **options: Any,
) -> Iterator[Stack]:
    """
    The whole system on the embedded cluster, as the tests run it: workers retry after
    0.5 s, the operator reconciles every 2 s, and every job builds its own bundle (tests
    ask for the same files again and again, and most watch a build: ``test_reuse``
    turns reuse on), unless ``operator`` or ``options`` say otherwise. ``delay_ms``
    slows every file of a worker so a test can catch it running.
    """
    env = {
        "DOWNLOADJOBS_OPERATOR_RECONCILE_INTERVAL": "2",
        "DOWNLOADJOBS_OPERATOR_REUSE_BUNDLES": "false",
        **(operator or {}),
    }
    options.setdefault("backoff_base", 0.5)
    state = Path(factory.mktemp(name))
    with Stack(state, worker_delay_ms=delay_ms, extra_env=env, **options) as stack:
        yield stack


def wait_for(predicate: Any, timeout: float = 60, what: str = "condition") -> Any:
    """The predicate's first truthy value, polled every 0.2 s; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def leftovers(stack: Stack, job_id: str) -> dict[str, Any]:
    """Whatever a finished-off job might leave behind."""
    client = s3.client(stack.s3_settings, credentials=s3server.BOTO_CREDENTIALS)
    key = stack.s3_settings.bundle_key(stack.namespace, job_id)
    uploads = client.list_multipart_uploads(Bucket=stack.s3_settings.bundle_bucket, Prefix=key)
    objects = client.list_objects_v2(Bucket=stack.s3_settings.bundle_bucket, Prefix=key)
    return {
        "jobs": [j["metadata"]["name"] for j in stack.jobs() if job_id in j["metadata"]["name"]],
        "processes": [pod for pod, _ in stack.pod_processes() if job_id in pod],
        "uploads": uploads.get("Uploads", []),
        "objects": objects.get("Contents", []),
    }


def wait_nothing_left(stack: Stack, job_id: str, timeout: float = 60) -> None:
    """Until nothing of ``job_id`` is left; else fail saying what is."""
    found: dict[str, Any] = {}

    def gone() -> bool:
        found.update(leftovers(stack, job_id))
        return not any(found.values())

    try:
        wait_for(gone, timeout, f"nothing left of {job_id}")
    except AssertionError:
        raise AssertionError(f"left behind by {job_id}: {found}") from None
