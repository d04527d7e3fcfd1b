"""Status writes: throttled, off the stream's thread, and the result always last."""

import threading
from typing import Any

import pytest
import urllib3

from downloadjobs_worker.kubeapi import ApiError
from downloadjobs_worker.reporter import StatusReporter
from downloadjobs_worker.wire import WorkerStatus


class FakeApi:
    """Records status patches; ``gate`` holds every patch until it is set."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.patches: list[dict[str, Any]] = []
        self.written = threading.Condition()
        self.gate = gate
        self.entered = threading.Event()
        self.failures = 0
        self.unreachable = 0
        self.refusal = 0  # an HTTP status every patch answers, ``refusals`` times
        self.refusals = 1000
        self.calls = 0

    def patch_status(self, *args: Any) -> None:
        self.entered.set()
        self.calls += 1
        if self.refusal and self.refusals:
            self.refusals -= 1
            raise ApiError(status=self.refusal, reason="refused")
        if self.gate is not None:
            assert self.gate.wait(30), "the test never released the patch"
        if self.failures:
            self.failures -= 1
            raise ApiError(status=500, reason="flaky")
        if self.unreachable:
            self.unreachable -= 1
            raise urllib3.exceptions.MaxRetryError(None, "/status", "Connection refused")
        with self.written:
            self.patches.append(args[-1]["status"])
            self.written.notify_all()

    def wait_for(self, count: int) -> None:
        with self.written:
            assert self.written.wait_for(lambda: len(self.patches) >= count, timeout=30)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def status(done: int) -> WorkerStatus:
    return WorkerStatus(progress=done, bytes_done=done)


def test_progress_is_written_at_most_once_per_interval() -> None:
    api, clock = FakeApi(), Clock()
    reporter = StatusReporter(api, "ns", "job", 1.0, clock=clock)
    calls = [status(step // 100) for step in range(3 * 1024)]
    written = 0
    for call in calls:  # 3 s of a fast stream, a call every 1/1024 s
        reporter.progress(call)
        if call.heartbeat_at is not None:  # queued for writing: let it reach the server
            written += 1
            api.wait_for(written)
        clock.now += 1 / 1024
    reporter.final(status(99))
    assert [p["progress"] for p in api.patches] == [0, 10, 20, 99]


def test_a_slow_api_server_does_not_hold_up_the_stream() -> None:
    gate = threading.Event()
    api, clock = FakeApi(gate), Clock()
    reporter = StatusReporter(api, "ns", "job", 1.0, clock=clock)
    reporter.progress(status(1), force=True)
    assert api.entered.wait(30)  # the first write hangs in the API server
    for step in range(2, 50):  # ...while the stream goes on and calls again and again
        clock.now += 1.5
        reporter.progress(status(step))
    gate.set()
    api.wait_for(2)
    reporter.final(status(99))
    # the one in flight, then only the newest waiting snapshot, then the result
    assert [p["progress"] for p in api.patches] == [1, 49, 99]


def test_a_failed_progress_write_is_skipped_and_the_result_retried() -> None:
    api, clock = FakeApi(), Clock()
    api.failures = 1
    reporter = StatusReporter(api, "ns", "job", 1.0, clock=clock)
    reporter.progress(status(5), force=True)
    reporter.close()  # waits for the write in flight, which failed
    assert api.patches == []
    api.failures = 1
    reporter.final(status(99))
    assert [p["progress"] for p in api.patches] == [99]


def test_the_result_supersedes_progress_not_yet_written() -> None:
    gate = threading.Event()
    api, clock = FakeApi(gate), Clock()
    reporter = StatusReporter(api, "ns", "job", 1.0, clock=clock)
    reporter.progress(status(1), force=True)
    assert api.entered.wait(30)
    reporter.progress(status(2), force=True)  # waits behind the first
    gate.set()
    reporter.final(status(99))
    assert [p["progress"] for p in api.patches] == [1, 99]


def test_progress_carries_a_heartbeat_and_no_progress_follows_the_result() -> None:
    api, clock = FakeApi(), Clock()
    reporter = StatusReporter(api, "ns", "job", 1.0, clock=clock)
    reporter.progress(status(5))
    api.wait_for(1)
    reporter.final(status(99))
    clock.now += 10
    reporter.progress(status(7))
    assert [p["progress"] for p in api.patches] == [5, 99]
    assert all(p["heartbeatAt"] for p in api.patches)


class SleepingClock(Clock):
    """A clock that a fake ``sleep`` moves on."""

    def __init__(self) -> None:
        super().__init__()
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_result_outlives_an_api_server_that_refuses_connections_a_while() -> None:
    """Seen on a restart of kube-apiserver: the bundle was built, the write refused."""
    api, clock = FakeApi(), SleepingClock()
    api.unreachable = 4
    reporter = StatusReporter(api, "ns", "job", 1.0, clock=clock, sleep=clock.sleep)
    reporter.final(WorkerStatus(progress=100))
    assert api.patches[-1]["progress"] == 100
    assert clock.slept == [2, 4, 8, 10]


def test_the_result_outlives_a_slow_restart_of_the_api_server() -> None:
    """
    CI saw kube-apiserver take longer than half a minute to come back on a loaded
    machine: a pod that gave up then was replaced, and built the bundle again from 0 %.
    """
    api, clock = FakeApi(), SleepingClock()
    api.unreachable = 20  # about three minutes of refused connections
    reporter = StatusReporter(api, "ns", "job", 1.0, clock=clock, sleep=clock.sleep)
    reporter.final(WorkerStatus(progress=100))
    assert api.patches[-1]["progress"] == 100
    assert 120 < sum(clock.slept) < 300


def test_the_result_gives_up_after_its_patience_and_on_a_refusal() -> None:
    api, clock = FakeApi(), SleepingClock()
    api.unreachable = 1000
    reporter = StatusReporter(api, "ns", "job", 1.0, clock=clock, sleep=clock.sleep)
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        reporter.final(WorkerStatus(progress=100), patience=60)
    assert 60 <= sum(clock.slept) <= 70
    api = FakeApi()
    api.refusal = 403
    reporter = StatusReporter(api, "ns", "job", 1.0, clock=clock, sleep=clock.sleep)
    with pytest.raises(ApiError):
        reporter.final(WorkerStatus(progress=100))
    assert api.calls == 1


def test_the_result_retries_a_throttled_write() -> None:
    api, clock = FakeApi(), SleepingClock()
    api.refusal, api.refusals = 429, 2
    reporter = StatusReporter(api, "ns", "job", 1.0, clock=clock, sleep=clock.sleep)
    reporter.final(WorkerStatus(progress=100))
    assert api.calls == 3 and api.patches[-1]["progress"] == 100
