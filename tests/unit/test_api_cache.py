"""The watch cache: list then watch, resume from the last version, relist on 410 Gone."""

import asyncio
import json
import threading
import time
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from downloadjobs_api.cache import JobCache, Watcher
from downloadjobs_api.jobs import JobNotFound, JobService


def job(name: str, rv: int, phase: str | None = None, owner: str = "anonymous") -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": name, "resourceVersion": str(rv)},
        "spec": {"fileIds": [70000], "owner": owner},
    }
    if phase:
        body["status"] = {"phase": phase}
    return body


class FakeStream:
    """What the kubernetes client's watch reads: urllib3's response.stream()."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events

    def stream(self, amt: Any = None, decode_content: bool = False) -> Any:
        for event in self.events:
            yield (json.dumps(event) + "\n").encode()

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


class FakeApi:
    """A scripted API server: lists and watch streams, in order; records the calls."""

    def __init__(self, lists: list[dict[str, Any]], watches: list[list[dict[str, Any]]]) -> None:
        self.lists = lists
        self.watches = watches
        self.calls: list[dict[str, Any]] = []
        self.gets: list[str] = []
        self.done = threading.Event()

    def list_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> Any:
        """Docstring the kubernetes watch parses: :return: object"""
        self.calls.append(kwargs)
        if kwargs.get("watch"):
            if not self.watches:
                self.done.set()
                raise ApiException(status=500, reason="script over")
            return FakeStream(self.watches.pop(0))
        return self.lists.pop(0)

    def get_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        self.gets.append(args[-1])
        if args[-1] == "known":
            return job("known", 5)
        raise ApiException(status=404, reason="Not Found")


def gone() -> dict[str, Any]:
    return {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}


def run(api: FakeApi, cache: JobCache) -> Watcher:
    watcher = Watcher(api, "default", cache, timeout_seconds=5, backoff_seconds=0.01)
    watcher.start()
    assert api.done.wait(10), "the script did not run to its end"
    watcher.stop()
    return watcher


def test_lists_watches_resumes_and_relists_on_gone() -> None:
    api = FakeApi(
        lists=[
            {"metadata": {"resourceVersion": "10"}, "items": [job("a", 9)]},
            {"metadata": {"resourceVersion": "30"}, "items": [job("b", 21, "Processing")]},
        ],
        watches=[
            [{"type": "ADDED", "object": job("b", 11)}],  # then the server ends the watch
            [{"type": "MODIFIED", "object": job("b", 12, "Queued")}, gone()],
            [{"type": "DELETED", "object": job("b", 31)}],
        ],
    )
    cache = JobCache()
    watcher = run(api, cache)
    watch_versions = [c["resource_version"] for c in api.calls if c.get("watch")]
    assert watch_versions[:3] == ["10", "11", "30"], "resume from the last event; relist on 410"
    assert watcher.lists == 2
    assert cache.synced.is_set()
    assert cache.get("a") is None, "the relist dropped what the server no longer has"
    assert cache.get("b") is None, "deleted by the last event"
    assert not cache.connected, "the scripted failure at the end marks the watch down"
    assert cache.lag_seconds() >= 0


def test_a_newer_version_is_never_replaced_by_an_older_one() -> None:
    cache = JobCache()
    cache.put(job("a", 12, "Processing"))
    cache.put(job("a", 11, "Queued"))  # a late read-your-writes put
    assert cache.get("a") == job("a", 12, "Processing")
    cache.put(job("a", 13, "Completed"))
    assert cache.get("a") == job("a", 13, "Completed")


async def test_a_long_poll_wakes_on_a_change_from_another_thread() -> None:
    cache = JobCache()
    cache.put(job("a", 1))
    threading.Timer(0.2, lambda: cache.put(job("a", 2, "Processing"))).start()
    started = time.monotonic()
    await cache.wait_change("a", "1", timeout=20)
    assert cache.get("a") == job("a", 2, "Processing")
    assert time.monotonic() - started < 15, "woken by the change, not by the timeout"
    await asyncio.wait_for(cache.wait_change("a", "1", timeout=20), 1)  # changed already


def test_an_unseen_job_costs_one_get_then_comes_from_the_cache() -> None:
    api = FakeApi(lists=[], watches=[])
    jobs = JobService(api, "default", storage=None)  # type: ignore[arg-type]
    for _ in range(5):
        assert jobs.lookup("known", "anonymous")["metadata"]["name"] == "known"
    assert api.gets == ["known"]
    with pytest.raises(JobNotFound):
        jobs.lookup("known", "someone-else")
    with pytest.raises(JobNotFound):
        jobs.lookup("unknown", "anonymous")
