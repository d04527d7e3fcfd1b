"""The stack's supervisor: a process that dies comes back; one stopped on purpose does not."""

import os
import subprocess
import sys
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


def test_processes_die_with_a_stack_killed_by_sigkill(tmp_path: Path) -> None:
    """No etcd or kube-apiserver left holding its port when the stack is SIGKILLed."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from downloadjobs_embedded.supervisor import Process, Supervisor\n"
        "p = Supervisor().add(Process('s', ['sleep', '60'], {}, Path(sys.argv[1])))\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    stack = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "log")], stdout=subprocess.PIPE, text=True
    )
    assert stack.stdout is not None
    child = int(stack.stdout.readline())
    os.kill(child, 0)  # running
    stack.kill()
    stack.wait()

    def gone() -> bool:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return True
        with open(f"/proc/{child}/stat") as stat:  # a zombie until init reaps it
            return stat.read().split(") ")[1].startswith("Z")

    wait(gone)
