"""
Status writes from the worker: progress at most once per interval, the end always.

Progress is best effort (a failed write is logged and the next one carries the
newer numbers); the final result is retried, since the job depends on it.
"""

import logging
import time
from typing import Any

from kubernetes.client.exceptions import ApiException

from downloadjobs import model

log = logging.getLogger(__name__)


class StatusReporter:
    def __init__(self, api: Any, namespace: str, name: str, interval: float) -> None:
        self._api = api  # kubernetes.client.CustomObjectsApi
        self._namespace = namespace
        self._name = name
        self._interval = interval
        self._last = 0.0

    def read(self) -> dict[str, Any]:
        body: dict[str, Any] = self._api.get_namespaced_custom_object(
            model.GROUP, model.VERSION, self._namespace, model.PLURAL, self._name
        )
        return body

    def progress(self, status: model.DownloadJobStatus, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self._interval:
            return
        self._last = now
        status.heartbeat_at = model.utcnow()
        try:
            self._patch(status)
        except ApiException as exc:
            log.warning("progress not written (%s); the next write carries it", exc.reason)

    def final(self, status: model.DownloadJobStatus, attempts: int = 5) -> None:
        status.heartbeat_at = model.utcnow()
        for attempt in range(1, attempts + 1):
            try:
                self._patch(status)
                return
            except ApiException as exc:
                if attempt == attempts or (exc.status and 400 <= exc.status < 500):
                    raise
                time.sleep(min(2**attempt, 10))

    def _patch(self, status: model.DownloadJobStatus) -> None:
        self._api.patch_namespaced_custom_object_status(
            model.GROUP,
            model.VERSION,
            self._namespace,
            model.PLURAL,
            self._name,
            {"status": status.to_wire()},
        )
