"""
The whole system on localhost: a real control plane, a node agent, S3, operator and API.

:class:`Stack` is what ``downloadjobs dev`` and ``downloadjobs demo`` run and what
the end-to-end tests use as a fixture. Every part is a process of its own under a
:class:`~downloadjobs_embedded.supervisor.Supervisor`, which brings back any that
dies: etcd, kube-apiserver and kube-controller-manager (upstream's, built by
:mod:`~downloadjobs_embedded.controlplane`), the node agent that runs pods, moto's
S3 server, the operator and the API, the last two started with the same commands
a cluster would run, configured only through their environment and a kubeconfig.
"""

import asyncio
import base64
import json
import os
import secrets
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kubernetes
import yaml

from downloadjobs import crd, model, statuspolicy
from downloadjobs.settings import S3Settings
from downloadjobs_embedded import controlplane, nodeagent, s3server
from downloadjobs_embedded.faults import FaultyProxy
from downloadjobs_embedded.supervisor import Process, Supervisor

S3_SECRET = "s3-credentials"
WORKER_SERVICE_ACCOUNT = "downloadjobs-worker"
#: The ValidatingAdmissionPolicy (and its binding) that keeps each worker to its own job.
STATUS_POLICY = "downloadjobs-worker-status"
#: The KopfPeering object of operator replicas (the CLI's default `--peering`).
PEERING = "downloadjobs"
#: The API's rate limits and per-owner cap are for a public crowd; one developer or a
#: test that fires 200 jobs from one address is not one (extra_env can set them back).
DEV_API_LIMITS = {
    "DOWNLOADJOBS_API_POLL_RATE": "100000/minute",
    "DOWNLOADJOBS_API_INITIATE_RATE": "10000/minute",
    "DOWNLOADJOBS_API_MAX_ACTIVE_JOBS_PER_OWNER": "10000",
    "DOWNLOADJOBS_API_MAX_LONG_POLLS_PER_OWNER": "1000",
}
#: The order in which :meth:`Stack.__exit__` stops things: clients before servers.
SHUTDOWN_ORDER = ["api", "operator", "nodeagent", "controller-manager", "apiserver", "etcd"]
#: Audit policy: every request of the product's processes and of people, none of the
#: control plane's own chatter; tests count a process's requests by its User-Agent.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "None", "userGroups": ["system:nodes"]},
        {"level": "None", "users": ["system:kube-controller-manager", "system:kube-scheduler"]},
        {"level": "None", "userGroups": ["system:serviceaccounts:kube-system"]},
        {"level": "Metadata"},
    ],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@attrs.define
class Stack:
    state_dir: Path
    namespace: str = "default"
    api_port: int = attrs.field(factory=free_port)
    kube_port: int = attrs.field(factory=free_port)
    s3_port: int = attrs.field(factory=free_port)
    operator_port: int = attrs.field(factory=free_port)
    etcd_port: int = attrs.field(factory=free_port)
    etcd_peer_port: int = attrs.field(factory=free_port)
    controller_manager_port: int = attrs.field(factory=free_port)
    worker_delay_ms: tuple[int, int] = (0, 0)
    #: The Job controller's pod-failure back-off, in seconds (upstream's is 10).
    backoff_base: float = 10.0
    extra_env: dict[str, str] = attrs.field(factory=dict)
    #: Share of the pods' S3 requests answered 503/500 by a proxy (fault tests).
    s3_fault_rate: float = 0.0
    fault_port: int = attrs.field(factory=free_port)
    faults: FaultyProxy | None = attrs.field(default=None, init=False)
    #: Operator replicas. One runs ``--standalone``; more share a KopfPeering object
    #: with descending priorities ("operator" highest, then "operator-2", …).
    operators: int = 1
    #: Only etcd, kube-apiserver and the CRD: for benchmarks that seed objects directly.
    control_plane_only: bool = False
    #: False: the cluster (control plane and node agent) and S3, and nothing of ours:
    #: no CRD, no accounts, no operator, no API; what ``helm install`` puts there
    #: (tests/e2e/test_helm.py).
    workloads: bool = True
    #: Seconds a pod "runs" when the node agent only simulates them (kwok's way: no
    #: process; Running at once, Succeeded this much later), for benchmarks of the
    #: control path. None: pods run as processes.
    simulate_pods: float | None = None
    #: Extra kube-controller-manager flags, e.g. ``["--kube-api-qps=100"]`` (benchmarks).
    controller_manager_flags: list[str] = attrs.field(factory=list)

    supervisor: Supervisor = attrs.field(factory=Supervisor, init=False)
    control: controlplane.ControlPlane | None = attrs.field(default=None, init=False)
    _client: kubernetes.client.ApiClient | None = attrs.field(default=None, init=False)
    _faults_loop: asyncio.AbstractEventLoop | None = attrs.field(default=None, init=False)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def kube_url(self) -> str:
        return f"https://127.0.0.1:{self.kube_port}"

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def kubeconfig(self) -> Path:
        """The cluster admin's kubeconfig, for kubectl, helm, the tests and the stack's own."""
        return self.state_dir / "kubeconfig"

    @property
    def pods_dir(self) -> Path:
        return self.state_dir / "pods"

    @property
    def processes(self) -> dict[str, Any]:
        """The running processes by name (``subprocess.Popen``)."""
        return {
            name: process.popen
            for name, process in self.supervisor.processes.items()
            if process.popen is not None
        }

    @property
    def client(self) -> kubernetes.client.ApiClient:
        """An API client with the admin's rights (the tests' and the bootstrap's)."""
        if self._client is None:
            self._client = kubernetes.config.new_client_from_config(str(self.kubeconfig))
        return self._client

    @property
    def s3_settings(self) -> S3Settings:
        return S3Settings(
            endpoint_url=self.s3_url, public_endpoint_url=self.s3_url, path_style=True
        )

    def s3_env(self) -> dict[str, str]:
        return self.s3_settings.environment()

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> "Stack":
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_control_plane()
            if self.control_plane_only:
                self._bootstrap(workloads=False)
                return self
            self._start_s3()
            if not self.workloads:
                return self
            self._bootstrap()
            self._start_faults()
            for name, args in self._operator_commands().items():
                self._add(name, args, self._operator_env())
            api = ["api", "--host", "127.0.0.1", "--port", str(self.api_port)]
            self._add("api", api, self._api_env())
            self.wait_http(f"{self.api_url}/health", "api")
            self.wait_http(f"http://127.0.0.1:{self.operator_port}/healthz", "operator")
            (self.state_dir / "stack.json").write_text(json.dumps(self.describe(), indent=2))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_: object) -> None:
        operators = [name for name in self.supervisor.processes if name.startswith("operator")]
        order = ["api", *operators, *SHUTDOWN_ORDER[2:]]
        self.supervisor.close(order)
        nodeagent.stop_all_containers(self.pods_dir)
        if self._faults_loop is not None:
            self._faults_loop.call_soon_threadsafe(self._faults_loop.stop)
        (self.state_dir / "stack.json").unlink(missing_ok=True)

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

    # -- the control plane and the node --------------------------------------------------------

    def _start_control_plane(self) -> None:
        binary = controlplane.ensure_binary()
        control = self.control = controlplane.ControlPlane(
            self.state_dir / "cluster",
            binary,
            etcd_port=self.etcd_port,
            etcd_peer_port=self.etcd_peer_port,
            apiserver_port=self.kube_port,
            controller_manager_port=self.controller_manager_port,
            job_backoff=f"{self.backoff_base}s",
            controller_manager_flags=self.controller_manager_flags,
        )
        control.prepare()
        (control.state_dir / "audit-policy.yaml").write_text(yaml.safe_dump(AUDIT_POLICY))
        env = dict(os.environ)
        self._add_command("etcd", control.etcd_command(), env)
        self.wait_http(f"http://127.0.0.1:{self.etcd_port}/health", "etcd")
        apiserver = [
            *control.apiserver_command(),
            f"--audit-policy-file={control.state_dir / 'audit-policy.yaml'}",
            f"--audit-log-path={self.state_dir / 'audit.log'}",
            "--audit-log-maxsize=200",
            "--audit-log-maxbackup=1",
        ]
        self._add_command("apiserver", apiserver, env)
        self._wait(lambda: (control.pki / "apiserver.crt").exists(), "apiserver", 60)
        control.publish_ca()
        admin = control.kubeconfig("admin").read_text()
        config = yaml.safe_load(admin)
        config["contexts"][0]["context"]["namespace"] = self.namespace
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.kubeconfig.chmod(0o600)
        self.wait_apiserver()
        if self.control_plane_only:
            return
        self._add_command(
            "controller-manager",
            control.controller_manager_command(),
            control.controller_manager_env(),
        )
        python_dir = str(Path(sys.executable).parent)
        node_env = {
            "PATH": os.pathsep.join([python_dir, os.defpath]),
            "HOME": str(self.state_dir),
            "PYTHONUNBUFFERED": "1",
            "LANG": "C.UTF-8",
        }
        agent = [
            sys.executable,
            "-m",
            "downloadjobs_embedded.nodeagent",
            f"--state-dir={self.pods_dir}",
            f"--kubeconfig={control.kubeconfig('node')}",
            f"--scheduler-kubeconfig={control.kubeconfig('scheduler')}",
            f"--ca-file={control.ca_file}",
            *(f"--env={k}={v}" for k, v in node_env.items()),
        ]
        if self.simulate_pods is not None:
            agent.append(f"--simulate={self.simulate_pods}")
        self._add_command("nodeagent", agent, dict(os.environ, PYTHONUNBUFFERED="1"))

    def wait_apiserver(self, timeout: float = 120) -> None:
        """Until kube-apiserver answers ``/readyz`` (after a start or a restart)."""
        self._wait(self._apiserver_ready, "apiserver", timeout)

    def _apiserver_ready(self) -> bool:
        try:
            response = self.client.call_api(
                "/readyz",
                "GET",
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
            )
        except Exception:
            return False
        return bool(response.status == 200)

    def _start_s3(self) -> None:
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.s3_port)]
        self._add_command("s3", command, dict(os.environ))
        self.wait_http(f"{self.s3_url}/", "s3")
        s3server.seed(self.s3_settings)

    def _start_faults(self) -> None:
        """The fault-injecting proxy in front of S3, when a fault rate is set."""
        if not self.s3_fault_rate:
            return
        self.faults = FaultyProxy(self.s3_url, self.s3_fault_rate)
        started = threading.Event()

        async def serve() -> None:
            assert self.faults is not None
            runner = aiohttp.web.AppRunner(self.faults.app(), access_log=None)
            await runner.setup()
            await aiohttp.web.TCPSite(runner, "127.0.0.1", self.fault_port).start()
            started.set()

        def run() -> None:
            loop = self._faults_loop = asyncio.new_event_loop()
            loop.run_until_complete(serve())
            loop.run_forever()

        threading.Thread(target=run, daemon=True, name="s3-faults").start()
        started.wait(10)

    def _bootstrap(self, workloads: bool = True) -> None:
        """What a cluster admin and ``helm install`` would have created."""
        core = kubernetes.client.CoreV1Api(self.client)
        _create(lambda: core.create_namespace({"metadata": {"name": self.namespace}}))
        extensions = kubernetes.client.ApiextensionsV1Api(self.client)
        definitions = [crd.build_crd()]
        if self.operators > 1:
            definitions.append(crd.build_peering_crd())  # the operators create the object
        for definition in definitions:
            _create(lambda d=definition: extensions.create_custom_resource_definition(d))
            name = definition["metadata"]["name"]
            self._wait(lambda n=name: _established(extensions, n), "apiserver", 60)
        if not workloads:
            return
        ns = self.namespace
        account = {"metadata": {"name": WORKER_SERVICE_ACCOUNT}}
        _create(lambda: core.create_namespaced_service_account(ns, account))
        rbac = kubernetes.client.RbacAuthorizationV1Api(self.client)
        role, binding = worker_rbac(ns)
        _create(lambda: rbac.create_namespaced_role(ns, role))
        _create(lambda: rbac.create_namespaced_role_binding(ns, binding))
        # As the chart's worker.statusPolicy: a worker writes its own job's status only.
        admission = kubernetes.client.AdmissionregistrationV1Api(self.client)
        policy = statuspolicy.policy(STATUS_POLICY, WORKER_SERVICE_ACCOUNT)
        _create(lambda: admission.create_validating_admission_policy(policy))
        policy_binding = statuspolicy.binding(STATUS_POLICY, STATUS_POLICY)
        _create(lambda: admission.create_validating_admission_policy_binding(policy_binding))
        encoded = {
            k: base64.b64encode(v.encode()).decode() for k, v in s3server.CREDENTIALS.items()
        }
        secret = {"metadata": {"name": S3_SECRET}, "type": "Opaque", "data": encoded}
        _create(lambda: core.create_namespaced_secret(ns, secret))
        # Pods wait for their ServiceAccount's token controller no more: but the
        # namespace's "default" account must exist before any pod is admitted.
        self._wait(lambda: _exists(lambda: core.read_namespaced_service_account("default", ns)))

    # -- the processes -------------------------------------------------------------------------

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
        env["DOWNLOADJOBS_API_IDEMPOTENCY_SECRET"] = self._idempotency_secret()
        env.update(self.extra_env)
        return env

    def _idempotency_secret(self) -> str:
        """The HMAC key of idempotent job names: one per state directory, as a chart's Secret."""
        path = self.state_dir / "idempotency-secret"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()

    def _add(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self._add_command(name, [sys.executable, "-m", "downloadjobs_cli", *args], env)

    def _add_command(self, name: str, command: list[str], env: dict[str, str]) -> None:
        self.supervisor.add(Process(name, command, env, self.state_dir / f"{name}.log"))

    def restart(self, name: str) -> None:
        """Stop and start one of the processes (fault tests, API restarts)."""
        self.stop(name)
        self.start(name)

    def stop(self, name: str) -> None:
        """Stop one process; it stays down until :meth:`start` (outage tests)."""
        self.supervisor.stop(name)

    def start(self, name: str) -> None:
        """Start again a process that :meth:`stop` stopped, on the same port."""
        process = self.supervisor.processes[name]
        if name == "api":  # with the environment as ``extra_env`` says now
            process.env = self._api_env()
        elif name.startswith("operator"):
            process.env = self._operator_env()
        self.supervisor.start(name)

    def write_kubeconfig(self, path: Path, server: str) -> None:
        """The admin's kubeconfig with another server address (a proxy in front of it)."""
        config = yaml.safe_load(self.kubeconfig.read_text())
        config["clusters"][0]["cluster"]["server"] = server
        path.write_text(yaml.safe_dump(config))

    def kill(self, name: str, restart: bool = True) -> int:
        """SIGKILL one process, as by hand; the supervisor brings it back with back-off
        (unless ``restart`` is False: :meth:`start` brings it back then)."""
        return self.supervisor.kill(name, restart=restart)

    def wait_http(self, url: str, name: str, timeout: float = 60) -> None:
        def answers() -> bool:
            try:
                urllib.request.urlopen(url, timeout=2).close()
            except (urllib.error.URLError, ConnectionError, OSError):
                return False
            return True

        self._wait(answers, name, timeout)

    def _wait(self, check: Any, name: str = "", timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self.supervisor.processes.get(name)
            if process is not None and process.popen is not None:
                code = process.popen.poll()
                if code is not None and process.restarts >= 2:
                    log = process.log.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"{name} keeps exiting ({code}):\n{log}")
            if check():
                return
            time.sleep(0.2)
        raise RuntimeError(f"{name or 'the stack'} was not ready within {timeout} s")

    # -- for tests and the demo ----------------------------------------------------------------

    def objects(
        self, group: str, version: str, plural: str, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """Every object of a resource, as the API server returns it (plain dicts)."""
        prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        path = f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"
        response = self.client.call_api(
            path,
            "GET",
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
        )
        items: list[dict[str, Any]] = json.loads(response.data)["items"]
        return items

    def downloadjobs(self) -> list[dict[str, Any]]:
        return self.objects(model.GROUP, model.VERSION, model.PLURAL, self.namespace)

    def jobs(self) -> list[dict[str, Any]]:
        return self.objects("batch", "v1", "jobs", self.namespace)

    def pods(self) -> list[dict[str, Any]]:
        return self.objects("", "v1", "pods", self.namespace)

    def events(self) -> list[dict[str, Any]]:
        return self.objects("", "v1", "events", self.namespace)

    def pod_processes(self) -> list[tuple[str, int]]:
        """(pod name, pid) of every container the node agent runs now."""
        return nodeagent.running_containers(self.pods_dir)

    def requests_by(self, user_agent: str) -> int:
        """Requests the API server has served to clients whose User-Agent starts so."""
        log = self.state_dir / "audit.log"
        if not log.exists():
            return 0
        count = 0
        with log.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if f'"userAgent":"{user_agent}' in line:
                    count += 1
        return count


def worker_rbac(namespace: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The worker's Role and RoleBinding, as the chart grants them: its job, its status."""
    name = WORKER_SERVICE_ACCOUNT
    role = {
        "metadata": {"name": name},
        "rules": [
            {"apiGroups": [model.GROUP], "resources": [model.PLURAL], "verbs": ["get"]},
            {
                "apiGroups": [model.GROUP],
                "resources": [f"{model.PLURAL}/status"],
                "verbs": ["patch"],
            },
        ],
    }
    binding = {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    }
    return role, binding


def _create(create: Any) -> None:
    """Create an object unless it exists: a restarted ``make dev`` finds its own."""
    try:
        create()
    except kubernetes.client.ApiException as exc:
        if exc.status != 409:
            raise


def _exists(read: Any) -> bool:
    try:
        read()
    except kubernetes.client.ApiException:
        return False
    return True


def _established(api: kubernetes.client.ApiextensionsV1Api, name: str) -> bool:
    body = api.read_custom_resource_definition(name)
    conditions = (body.status and body.status.conditions) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)
