"""The stack's supervisor: a process that dies comes back; one stopped on purpose does not."""

import time
from pathlib import Path

from downloadjobs_embedded.supervisor import Process, Supervisor


def wait(check: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_a_killed_process_comes_back_and_a_stopped_one_stays_down(tmp_path: Path) -> None:
    supervisor = Supervisor()
    process = supervisor.add(Process("sleeper", ["sleep", "60"], {}, tmp_path / "log"))
    try:
        first = process.pid
        supervisor.kill("sleeper")
        wait(lambda: process.alive() and process.pid != first)
        assert process.restarts == 1
        supervisor.stop("sleeper")
        time.sleep(1.5)
        assert not process.alive() and process.restarts == 1
        supervisor.start("sleeper")
        assert process.alive()
    finally:
        supervisor.close([])
    assert not process.alive()


def test_a_crash_loop_backs_off(tmp_path: Path) -> None:
    supervisor = Supervisor()
    process = supervisor.add(Process("crasher", ["false"], {}, tmp_path / "log"))
    try:
        wait(lambda: process.restarts >= 2, timeout=10)
        assert process.backoff >= 4.0, "1 s, then 2 s, then 4 s"
    finally:
        supervisor.close([])
