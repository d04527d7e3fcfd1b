"""
Processes that come back when they die, as static pods and Deployments' pods do.

Each process of the stack (etcd, kube-apiserver, kube-controller-manager, the node
agent, S3, the operator, the API) is a :class:`Process`; the :class:`Supervisor`
starts it, and when it exits without being asked to, starts it again after a
back-off that doubles from one second up to thirty and resets once a process has
run for a minute: the kubelet's crash-loop back-off, scaled down for a laptop.
"""

import ctypes
import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import attrs

logger = logging.getLogger(__name__)

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
#: A process that ran this long has recovered: its next crash starts the back-off over.
STABLE_AFTER = 60.0
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """
    In the child before exec: SIGTERM when the stack's process dies, however it dies.

    The processes run in sessions of their own (so a terminal's Ctrl-C reaches only
    the stack, which stops them in order); without this, a stack killed with SIGKILL
    would leave etcd, kube-apiserver and the rest holding their ports.
    """
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


#: Looked up once in the parent: the child between fork and exec only calls it.
_prctl = ctypes.CDLL(None, use_errno=True).prctl


@attrs.define
class Process:
    """One supervised command, its environment and its log file."""

    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff: float = BACKOFF_FIRST
    next_start: float = 0.0
    #: False once stopped on purpose (:meth:`Supervisor.stop`): not restarted.
    wanted: bool = True

    def spawn(self) -> None:
        with self.log.open("ab") as log:
            self.popen = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # A group of its own: a terminal's Ctrl-C reaches the stack, which stops
                # its processes in order, not every process at once.
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.started_at = time.monotonic()
        self.next_start = 0.0

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


def terminate(popen: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL after ``timeout``: a pod's graceful deletion."""
    if popen.poll() is None:
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(timeout)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()


@attrs.define
class Supervisor:
    processes: dict[str, Process] = attrs.field(factory=dict)
    _lock: threading.RLock = attrs.field(factory=threading.RLock)
    _closed: threading.Event = attrs.field(factory=threading.Event)
    _thread: threading.Thread | None = None

    def add(self, process: Process) -> Process:
        with self._lock:
            self.processes[process.name] = process
            process.wanted = True
            process.spawn()
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, daemon=True, name="supervisor")
            self._thread.start()
        return process

    def stop(self, name: str, timeout: float = 10) -> None:
        """Stop a process on purpose: it stays down until :meth:`start`."""
        with self._lock:
            process = self.processes[name]
            process.wanted = False
        if process.popen is not None:
            terminate(process.popen, timeout)

    def start(self, name: str) -> None:
        with self._lock:
            process = self.processes[name]
            process.wanted = True
            if not process.alive():
                process.backoff = BACKOFF_FIRST
                process.spawn()

    def kill(self, name: str, timeout: float = 60, restart: bool = True) -> int:
        """
        SIGKILL a process as a person would by hand; the supervisor brings it back,
        unless ``restart`` is False (a node that is gone for good).

        A process in its restart back-off is waited for first: killing it twice in
        a row means killing two lives of it, not the same corpse twice.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                process = self.processes[name]
                popen = process.popen
                if popen is not None and process.alive():
                    process.wanted = restart
                    os.kill(popen.pid, signal.SIGKILL)
                    return popen.pid
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} is not running to be killed")
            time.sleep(0.1)

    def close(self, order: list[str]) -> None:
        """Stop everything: the names in ``order`` first, in that order, then the rest."""
        self._closed.set()
        with self._lock:
            names = [*order, *(n for n in reversed(self.processes) if n not in order)]
            for process in self.processes.values():
                process.wanted = False
        for name in names:
            stopping = self.processes.get(name)
            if stopping is not None and stopping.popen is not None:
                terminate(stopping.popen)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _watch(self) -> None:
        while not self._closed.wait(0.2):
            now = time.monotonic()
            with self._lock:
                for process in self.processes.values():
                    self._check(process, now)

    @staticmethod
    def _check(process: Process, now: float) -> None:
        if not process.wanted or process.popen is None:
            return
        if process.popen.poll() is None:
            if now - process.started_at > STABLE_AFTER:
                process.backoff = BACKOFF_FIRST
            return
        if not process.next_start:
            process.next_start = now + process.backoff
            logger.warning(
                "%s exited with %s; restarting in %.0f s",
                process.name,
                process.popen.returncode,
                process.backoff,
            )
            process.backoff = min(process.backoff * 2, BACKOFF_MAX)
        elif now >= process.next_start:
            process.next_start = 0.0
            process.restarts += 1
            process.spawn()
