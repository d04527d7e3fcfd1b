"""
The operator's kopf side without a server: what it asks the API server to send, and
what its indexes keep for the decisions made at each job's creation.
"""

from typing import Any

import kopf

from downloadjobs import model
from downloadjobs_operator import handlers


def test_the_jobs_watch_asks_the_server_for_our_jobs_only() -> None:
    settings = kopf.OperatorSettings()
    handlers.tune(settings)
    jobs = kopf.Resource("batch", "v1", "jobs", namespaced=True)
    downloadjobs = kopf.Resource(model.GROUP, model.VERSION, model.PLURAL, namespaced=True)
    selectors = settings.watching.label_selectors
    assert list(selectors.collect(jobs)) == [f"{model.LABEL_MANAGED_BY}={model.MANAGED_BY}"]
    assert list(selectors.collect(downloadjobs)) == [], "every DownloadJob is ours"
    assert handlers.MANAGED_JOBS == {model.LABEL_MANAGED_BY: model.MANAGED_BY}


def downloadjob(name: str, phase: str | None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "managedFields": [{"big": "x"}]},
        "spec": {"fileIds": list(range(70000, 71000)), "owner": "alice"},
        "status": {"phase": phase} if phase else {},
    }


def job(name: str, condition: str | None) -> dict[str, Any]:
    conditions = [{"type": condition, "status": "True"}] if condition else []
    return {
        "metadata": {"name": name},
        "spec": {"suspend": False},
        "status": {"conditions": conditions},
    }


def test_the_view_keeps_what_is_not_finished_apart() -> None:
    index: Any = handlers.downloadjobs_by_namespace  # (kopf types it as called by kopf)
    jobs: Any = handlers.jobs_by_namespace
    queued = index(body=downloadjob("a", "Queued"), namespace="ns", name="a")
    done = index(body=downloadjob("b", "Completed"), namespace="ns", name="b")
    assert set(queued) == {"ns", ("ns", "a"), ("ns", "")}
    assert set(done) == {"ns", ("ns", "b")}, "a finished job only where the passes read"
    assert "fileIds" not in queued["ns"]["spec"] and "managedFields" not in queued["ns"]["metadata"]
    running = jobs(body=job("dj-a", None), namespace="ns", name="dj-a")
    ended = jobs(body=job("dj-b", "Complete"), namespace="ns", name="dj-b")
    assert set(running) == {"ns", ("ns", "dj-a"), ("ns", "")}
    assert set(ended) == {"ns", ("ns", "dj-b")}
