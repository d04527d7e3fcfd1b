"""
The whole system on localhost: embedded cluster, S3, operator and API.

:class:`Stack` is what ``downloadjobs dev`` and ``downloadjobs demo`` run and what
the end-to-end tests use as a fixture. The API server and the Job runner share
one event loop in a background thread of this process; moto, the operator and
the API are separate processes started with the same commands a cluster would
run, configured only through their environment and a kubeconfig.
"""

import asyncio
import base64
import concurrent.futures
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp.web
import attrs
import kmock
import yaml

from downloadjobs import crd, model
from downloadjobs.settings import S3Settings
from downloadjobs_embedded import s3server
from downloadjobs_embedded.apiserver import EmbeddedApiServer
from downloadjobs_embedded.faults import FaultyProxy
from downloadjobs_embedded.jobrunner import JobRunner

T = TypeVar("T")
S3_SECRET = "s3-credentials"
#: The KopfPeering object of operator replicas (the CLI's default `--peering`).
PEERING = "downloadjobs"
#: The API's rate limits and per-owner cap are for a public crowd; one developer or a
#: test that fires 200 jobs from one address is not one (extra_env can set them back).
DEV_API_LIMITS = {
    "DOWNLOADJOBS_API_POLL_RATE": "100000/minute",
    "DOWNLOADJOBS_API_INITIATE_RATE": "10000/minute",
    "DOWNLOADJOBS_API_MAX_ACTIVE_JOBS_PER_OWNER": "10000",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_kubeconfig(path: Path, server: str, namespace: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "embedded", "cluster": {"server": server}}],
        "users": [{"name": "developer", "user": {"token": "embedded"}}],
        "contexts": [
            {
                "name": "embedded",
                "context": {"cluster": "embedded", "user": "developer", "namespace": namespace},
            }
        ],
        "current-context": "embedded",
    }
    path.write_text(yaml.safe_dump(config))


@attrs.define
class Stack:
    state_dir: Path
    namespace: str = "default"
    api_port: int = attrs.field(factory=free_port)
    kube_port: int = attrs.field(factory=free_port)
    s3_port: int = attrs.field(factory=free_port)
    operator_port: int = attrs.field(factory=free_port)
    worker_delay_ms: tuple[int, int] = (0, 0)
    backoff_base: float = 10.0
    extra_env: dict[str, str] = attrs.field(factory=dict)
    #: Share of the pods' S3 requests answered 503/500 by a proxy (fault tests).
    s3_fault_rate: float = 0.0
    fault_port: int = attrs.field(factory=free_port)
    faults: FaultyProxy | None = attrs.field(default=None, init=False)
    #: Operator replicas. One runs ``--standalone``; more share a KopfPeering object
    #: with descending priorities ("operator" highest, then "operator-2", …).
    operators: int = 1

    server: EmbeddedApiServer = attrs.field(factory=EmbeddedApiServer, init=False)
    runner: JobRunner | None = attrs.field(default=None, init=False)
    _loop: asyncio.AbstractEventLoop | None = attrs.field(default=None, init=False)
    _thread: threading.Thread | None = attrs.field(default=None, init=False)
    _stop: asyncio.Event | None = attrs.field(default=None, init=False)
    processes: dict[str, subprocess.Popen[bytes]] = attrs.field(factory=dict, init=False)
    _stopped: dict[str, list[str]] = attrs.field(factory=dict, init=False)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def kube_url(self) -> str:
        return f"http://127.0.0.1:{self.kube_port}"

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def s3_settings(self) -> S3Settings:
        return S3Settings(
            endpoint_url=self.s3_url, public_endpoint_url=self.s3_url, path_style=True
        )

    def s3_env(self) -> dict[str, str]:
        settings = self.s3_settings.model_dump(mode="json")
        return {
            f"DOWNLOADJOBS_S3_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in settings.items()
            if v is not None
        }

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> "Stack":
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_cluster()
            self.processes["s3"] = s3server.start_moto(self.s3_port, self.state_dir / "moto.log")
            s3server.seed(self.s3_settings)
            self.call(self._bootstrap)
            write_kubeconfig(self.kubeconfig, self.kube_url, self.namespace)
            for name, args in self._operator_commands().items():
                self.processes[name] = self._spawn(name, args, self._operator_env())
            self.processes["api"] = self._spawn(
                "api",
                [
                    "api",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.api_port),
                ],
                self._api_env(),
            )
            self.wait_http(f"{self.api_url}/health", "api")
            self.wait_http(f"http://127.0.0.1:{self.operator_port}/healthz", "operator")
            (self.state_dir / "stack.json").write_text(json.dumps(self.describe(), indent=2))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_: object) -> None:
        operators = [name for name in self.processes if name.startswith("operator")]
        for name in ("api", *operators, "s3"):
            process = self.processes.pop(name, None)
            if process is not None:
                self.terminate(process)
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=15)
        (self.state_dir / "stack.json").unlink(missing_ok=True)

    def _operator_commands(self) -> dict[str, list[str]]:
        base = ["operator", "--namespace", self.namespace]
        if self.operators == 1:
            liveness = f"http://127.0.0.1:{self.operator_port}/healthz"
            return {"operator": [*base, "--standalone", "--liveness", liveness]}
        commands = {}
        for index in range(self.operators):
            name = "operator" if index == 0 else f"operator-{index + 1}"
            port = self.operator_port if index == 0 else free_port()
            priority = str(100 * (self.operators - index))
            liveness = f"http://127.0.0.1:{port}/healthz"
            commands[name] = [*base, "--priority", priority, "--liveness", liveness]
        return commands

    def describe(self) -> dict[str, Any]:
        return {
            "api": self.api_url,
            "kubernetes": self.kube_url,
            "s3": self.s3_url,
            "kubeconfig": str(self.kubeconfig),
            "namespace": self.namespace,
            "logs": str(self.state_dir),
            "pid": os.getpid(),
        }

    @staticmethod
    def terminate(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    # -- the cluster thread --------------------------------------------------------------------

    def _start_cluster(self) -> None:
        started = threading.Event()
        failure: list[BaseException] = []

        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # one line per request

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self.runner = JobRunner(
                self.server,
                self.state_dir / "pods",
                node_env={
                    "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.defpath]),
                    "HOME": str(self.state_dir),
                    "KUBECONFIG": str(self.kubeconfig),
                    "PYTHONUNBUFFERED": "1",
                },
                backoff_base=self.backoff_base,
            )
            try:
                proxy = await self._start_faults()
                async with (
                    self.server,
                    kmock.Server(self.server, host="127.0.0.1", port=self.kube_port),
                ):
                    runner = asyncio.create_task(self.runner.run())
                    started.set()
                    await self._stop.wait()
                    runner.cancel()
                    await asyncio.gather(runner, return_exceptions=True)
                if proxy is not None and self.faults is not None:
                    await self.faults.close()
                    await proxy.cleanup()
            except BaseException as exc:
                failure.append(exc)
                started.set()

        self._thread = threading.Thread(
            target=asyncio.run, args=(main(),), daemon=True, name="embedded-cluster"
        )
        self._thread.start()
        started.wait(30)
        if failure:
            raise RuntimeError("the embedded cluster did not start") from failure[0]

    async def _start_faults(self) -> aiohttp.web.AppRunner | None:
        """The fault-injecting proxy in front of S3, when a fault rate is set."""
        if not self.s3_fault_rate:
            return None
        self.faults = FaultyProxy(self.s3_url, self.s3_fault_rate)
        proxy = aiohttp.web.AppRunner(self.faults.app(), access_log=None)
        await proxy.setup()
        await aiohttp.web.TCPSite(proxy, "127.0.0.1", self.fault_port).start()
        return proxy

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in the cluster's event loop (the store is not thread-safe)."""
        assert self._loop is not None

        async def wrapper() -> T:
            return fn()

        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(
            wrapper(), self._loop
        )
        return future.result(timeout=30)

    def _bootstrap(self) -> None:
        """What a cluster admin and ``helm install`` would have created."""
        server = self.server
        server.insert(
            kmock.resource("", "v1", "namespaces"), None, {"metadata": {"name": self.namespace}}
        )
        server.insert(
            kmock.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions"),
            None,
            crd.build_crd(),
        )
        if self.operators > 1:
            crds = kmock.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            server.insert(crds, None, crd.build_peering_crd())  # the operators create the object
        server.insert(
            kmock.resource("", "v1", "serviceaccounts"),
            self.namespace,
            {"metadata": {"name": "downloadjobs-worker"}},
        )
        encoded = {
            k: base64.b64encode(v.encode()).decode() for k, v in s3server.CREDENTIALS.items()
        }
        server.insert(
            kmock.resource("", "v1", "secrets"),
            self.namespace,
            {"metadata": {"name": S3_SECRET}, "type": "Opaque", "data": encoded},
        )

    # -- the processes -------------------------------------------------------------------------

    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOWNLOADJOBS_", "AWS_"))}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        env.update(
            KUBECONFIG=str(self.kubeconfig),
            DOWNLOADJOBS_NAMESPACE=self.namespace,
            PYTHONUNBUFFERED="1",
        )
        env.update(self.s3_env())
        return env

    def _operator_env(self) -> dict[str, str]:
        env = self._base_env()
        if self.s3_fault_rate:  # the operator hands its S3 endpoint to the worker pods
            env["DOWNLOADJOBS_S3_ENDPOINT_URL"] = f"http://127.0.0.1:{self.fault_port}"
        env.update(s3server.CREDENTIALS)  # it aborts uploads and removes bundles
        env["DOWNLOADJOBS_OPERATOR_S3_SECRET_NAME"] = S3_SECRET
        env["DOWNLOADJOBS_OPERATOR_WORKER_ENV"] = json.dumps(
            {
                "DOWNLOADJOBS_WORKER_DELAY_MIN_MS": str(self.worker_delay_ms[0]),
                "DOWNLOADJOBS_WORKER_DELAY_MAX_MS": str(self.worker_delay_ms[1]),
            }
        )
        env.update(self.extra_env)
        return env

    def _api_env(self) -> dict[str, str]:
        env = self._base_env()
        env.update(s3server.CREDENTIALS)
        env.update(DEV_API_LIMITS)
        env.update(self.extra_env)
        return env

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.state_dir / f"{name}.log").open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "downloadjobs_cli", *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def restart(self, name: str) -> None:
        """Stop and start one of the processes (fault tests, API restarts)."""
        self.stop(name)
        self.start(name)

    def stop(self, name: str) -> None:
        """Stop one process, keeping its command to :meth:`start` it again (outage tests)."""
        process = self.processes[name]
        self.terminate(process)
        self._stopped[name] = list(map(str, process.args))[3:]  # type: ignore[arg-type]

    def start(self, name: str) -> None:
        """Start again a process that :meth:`stop` stopped, on the same port."""
        args = self._stopped.pop(name)
        env = self._operator_env() if name.startswith("operator") else self._api_env()
        self.processes[name] = self._spawn(name, args, env)

    def wait_http(self, url: str, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self.processes.get(name)
            if process is not None and process.poll() is not None:
                log = (self.state_dir / f"{name}.log").read_text()[-3000:]
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{log}")
            try:
                urllib.request.urlopen(url, timeout=2).close()
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.2)
        raise RuntimeError(f"{name} did not answer at {url} within {timeout} s")

    # -- for tests and the demo ----------------------------------------------------------------

    def downloadjobs(self) -> list[dict[str, Any]]:
        res = kmock.resource(model.GROUP, model.VERSION, model.PLURAL)
        return self.call(lambda: self.server.objects(res, self.namespace))

    def jobs(self) -> list[dict[str, Any]]:
        res = kmock.resource("batch", "v1", "jobs")
        return self.call(lambda: self.server.objects(res, self.namespace))
