"""
Status writes from the worker: progress at most once per interval, the end always.

Progress is best effort (a failed write is logged and the next one carries the
newer numbers) and goes out on a background thread, so a slow API server never
holds up the bytes; when a write is still in flight, only the newest snapshot
waits behind it. The final result is written last, after any progress write,
and retried, since the job depends on it.
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import urllib3

from downloadjobs import contract
from downloadjobs_worker.kubeapi import ApiError
from downloadjobs_worker.wire import WorkerStatus

log = logging.getLogger(__name__)


class StatusReporter:
    def __init__(
        self,
        api: Any,
        namespace: str,
        name: str,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._api = api  # kubeapi.DownloadJobApi
        self._namespace = namespace
        self._name = name
        self._interval = interval
        self._clock = clock
        self._sleep = sleep
        self._last: float | None = None
        self._wake = threading.Condition()
        self._waiting: dict[str, Any] | None = None  # the newest snapshot not yet written
        self._closed = False
        self._thread: threading.Thread | None = None

    def read(self) -> dict[str, Any]:
        body: dict[str, Any] = self._api.get(self._namespace, self._name)
        return body

    def progress(self, status: WorkerStatus, *, force: bool = False) -> None:
        """Queue a progress write unless one went out less than ``interval`` ago; never blocks."""
        now = self._clock()
        if not force and self._last is not None and now - self._last < self._interval:
            return
        self._last = now
        status.heartbeat_at = contract.utcnow()
        snapshot = status.to_wire()  # taken here: the caller keeps changing ``status``
        with self._wake:
            if self._closed:
                return
            self._waiting = snapshot
            self._wake.notify()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._write_progress, name="status-progress", daemon=True
                )
                self._thread.start()

    def _write_progress(self) -> None:
        while True:
            with self._wake:
                while self._waiting is None and not self._closed:
                    self._wake.wait()
                snapshot, self._waiting = self._waiting, None
                if self._closed or snapshot is None:
                    return
            try:
                self._patch(snapshot)
            except ApiError as exc:
                log.warning("progress not written (%s); the next write carries it", exc.reason)
            except Exception as exc:  # the API unreachable: the stream goes on regardless
                log.warning("progress not written (%s); the next write carries it", exc)

    def close(self) -> None:
        """Drop any progress not yet written and wait for the one in flight."""
        with self._wake:
            self._closed = True
            self._waiting = None
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()

    def final(self, status: WorkerStatus, patience: float = 300.0) -> None:
        """
        Write the result, riding out an API server that is away for up to ``patience``
        seconds (a restart, an upgrade, a slow start on a loaded node): the bundle is
        built, and a pod that gave up here would make the Job build it all again.
        """
        self.close()  # no late progress write may land after the result
        status.heartbeat_at = contract.utcnow()
        wire = status.to_wire()
        deadline = self._clock() + patience
        attempt = 0
        while True:
            attempt += 1
            try:
                self._patch(wire)
                return
            except ApiError as exc:
                permanent = exc.status and 400 <= exc.status < 500 and exc.status != 429
                if permanent or self._clock() >= deadline:
                    raise
            except (urllib3.exceptions.HTTPError, OSError):  # no answer at all
                if self._clock() >= deadline:
                    raise
            log.warning("result not written yet (attempt %d); retrying", attempt)
            self._sleep(min(2**attempt, 10))

    def _patch(self, wire: dict[str, Any]) -> None:
        self._api.patch_status(self._namespace, self._name, {"status": wire})
