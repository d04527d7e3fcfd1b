"""
The watch cache: every DownloadJob of the namespace, in memory, fed by one watch.

Polls are answered from here, so a crowd of pollers costs the Kubernetes API
server nothing. The cache is written by one thread (the :class:`Watcher`) and by
the request handlers (read-your-writes: a job this replica created or fetched is
put in at once); a newer resourceVersion always wins, so a late write never
replaces fresher data. Long-polls wait on per-job asyncio events that the writers
set from whatever thread they run in.
"""

import asyncio
import contextlib
import logging
import threading
import time
from typing import Any

from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from downloadjobs import model

log = logging.getLogger(__name__)


def resource_version(body: dict[str, Any]) -> str:
    return str(body.get("metadata", {}).get("resourceVersion") or "")


def _newer_or_same(new: str, old: str) -> bool:
    """
    Whether ``new`` may replace ``old``. resourceVersions are opaque, but every
    API server (etcd's revision) issues increasing integers; anything else is
    taken as newer, as an informer would.
    """
    if new.isascii() and new.isdigit() and old.isascii() and old.isdigit():
        return int(new) >= int(old)
    return True


class JobCache:
    """DownloadJob bodies by name; thread-safe; wakes long-polls on change."""

    def __init__(self) -> None:
        self._jobs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        #: The first full list has been loaded.
        self.synced = threading.Event()
        #: The watch is connected (False while the API server is unreachable).
        self.connected = False
        #: When the watch lost its connection (monotonic), for the lag metric.
        self.disconnected_since: float | None = None

    def get(self, name: str) -> dict[str, Any] | None:
        return self._jobs.get(name)

    def values(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._jobs.values())

    def __len__(self) -> int:
        return len(self._jobs)

    def put(self, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        with self._lock:
            old = self._jobs.get(name)
            if old is not None and not _newer_or_same(
                resource_version(body), resource_version(old)
            ):
                return
            self._jobs[name] = body
        self._wake(name)

    def delete(self, name: str) -> None:
        with self._lock:
            self._jobs.pop(name, None)
        self._wake(name)

    def replace_all(self, bodies: list[dict[str, Any]]) -> None:
        """A relist: what the API server has now, nothing more."""
        fresh = {b["metadata"]["name"]: b for b in bodies}
        with self._lock:
            changed = set(self._jobs) ^ set(fresh) | {
                n for n, b in fresh.items() if self._jobs.get(n) is not b
            }
            self._jobs = fresh
        for name in changed:
            self._wake(name)

    def mark_connected(self, connected: bool) -> None:
        if connected:
            self.disconnected_since = None
        elif self.connected or self.disconnected_since is None:
            self.disconnected_since = time.monotonic()
        self.connected = connected

    def lag_seconds(self) -> float:
        """How old the cache may be: 0 while watching, else the time since it lost the watch."""
        if self.disconnected_since is None:
            return 0.0
        return time.monotonic() - self.disconnected_since

    @property
    def stale(self) -> bool:
        return not (self.connected and self.synced.is_set())

    async def wait_change(self, name: str, version: str, timeout: float) -> None:
        """Return when job ``name`` is no longer at ``version``, or after ``timeout`` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            body = self._jobs.get(name)
            current = resource_version(body) if body is not None else ""
            remaining = deadline - loop.time()
            if current != version or remaining <= 0:
                return
            event = asyncio.Event()
            key = (loop, event)
            with self._lock:
                self._waiters.setdefault(name, set()).add(key)
            try:
                body = self._jobs.get(name)  # a change between the check and the registration
                if (resource_version(body) if body is not None else "") != version:
                    return
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                return
            finally:
                with self._lock:
                    waiting = self._waiters.get(name)
                    if waiting is not None:
                        waiting.discard(key)
                        if not waiting:
                            del self._waiters[name]

    def _wake(self, name: str) -> None:
        with self._lock:
            waiting = list(self._waiters.get(name, ()))
        for loop, event in waiting:
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(event.set)


class Watcher:
    """
    List, then watch from the list's resourceVersion; resume each watch from the
    last event seen; relist on 410 Gone; back off and retry while the API server
    is unreachable (the cache keeps answering, marked stale).
    """

    def __init__(
        self,
        api: Any,
        namespace: str,
        cache: JobCache,
        timeout_seconds: int = 300,
        backoff_seconds: float = 1.0,
    ) -> None:
        self._api = api  # kubernetes.client.CustomObjectsApi
        self._namespace = namespace
        self._cache = cache
        self._timeout = timeout_seconds
        self._backoff = backoff_seconds
        self._stop = threading.Event()
        self._watch: watch.Watch | None = None
        self._thread: threading.Thread | None = None
        #: Requests this watcher made (lists, watches), for the metrics and the tests.
        self.lists = 0
        self.watches = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="downloadjob-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()

    def run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                version = self._list()
                failures = 0
                while not self._stop.is_set():
                    version = self._follow(version)
            except ApiException as exc:
                if exc.status == 410:
                    log.info("watch expired (410 Gone); relisting")
                    continue
                failures += 1
                self._lost(exc, failures)
            except Exception as exc:
                failures += 1
                self._lost(exc, failures)

    def _lost(self, exc: Exception, failures: int) -> None:
        self._cache.mark_connected(False)
        delay = min(self._backoff * 2 ** min(failures - 1, 4), 15.0)
        log.warning("watch of DownloadJobs failed (%s); retrying in %.1f s", exc, delay)
        self._stop.wait(delay)

    def _list(self) -> str:
        self.lists += 1
        listing = self._api.list_namespaced_custom_object(
            model.GROUP, model.VERSION, self._namespace, model.PLURAL, _request_timeout=10
        )
        self._cache.replace_all(list(listing.get("items", [])))
        self._cache.mark_connected(True)
        self._cache.synced.set()
        return str(listing.get("metadata", {}).get("resourceVersion") or "")

    def _follow(self, version: str) -> str:
        """One watch request, from ``version``; returns the last version seen."""
        self.watches += 1
        started = time.monotonic()
        self._watch = watch.Watch()
        stream = self._watch.stream(
            self._api.list_namespaced_custom_object,
            model.GROUP,
            model.VERSION,
            self._namespace,
            model.PLURAL,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=self._timeout,
            _request_timeout=(5, self._timeout + 15),
        )
        for event in stream:
            body: dict[str, Any] = event["raw_object"]
            version = resource_version(body) or version
            kind = event["type"]
            if kind in ("ADDED", "MODIFIED"):
                self._cache.put(body)
            elif kind == "DELETED":
                self._cache.delete(body["metadata"]["name"])
            self._cache.mark_connected(True)
        if time.monotonic() - started < 1:  # a server that ends watches at once: no busy loop
            self._stop.wait(1)
        return version
