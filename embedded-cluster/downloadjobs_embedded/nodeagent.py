"""
The node agent: the embedded cluster's kubelet, running pods as local processes.

It registers one Node, binds every unscheduled pod to it (as kube-scheduler would,
under the scheduler's identity: there is one node to choose), and runs each pod
bound to it as a process under a :mod:`shim <downloadjobs_embedded.shim>`:
command and args, ``env``/``envFrom`` resolved through the API server, a real
service-account token from the TokenRequest API in a per-pod kubeconfig, an
address of its own on the loopback network, and pod status written as a kubelet
writes it. Graceful deletion is SIGTERM to the container's process group, the
grace period, SIGKILL, a terminal status, then the final delete.

It talks to the API server as ``system:node:embedded``, so the Node authorizer and
NodeRestriction admission decide what it may read and write, as for a kubelet.
What it cannot do (images, resource limits, security contexts, volumes other than
the token) is listed in docs/cluster-fidelity.md.

Run: ``python -m downloadjobs_embedded.nodeagent --state-dir DIR --kubeconfig NODE
--scheduler-kubeconfig SCHED --ca-file CA [--env NAME=VALUE ...]``.
"""

import argparse
import base64
import concurrent.futures
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import attrs
import kubernetes

from downloadjobs import kube
from downloadjobs_embedded import podspec

logger = logging.getLogger("nodeagent")

NODE_NAME = "embedded"
#: The kubelet's crash-loop back-off: 10 s, doubling, at most 5 minutes.
RESTART_BACKOFF = (10.0, 300.0)
HEARTBEAT_SECONDS = 10.0
#: Requested token lifetime: the kubelet's 3607 s, which the API server extends.
TOKEN_SECONDS = 3607
STRATEGIC = "application/strategic-merge-patch+json"
#: Requests to the API server in flight at once for binding and simulated pods.
WRITERS = 8


@attrs.define
class Container:
    """One run of a pod's container, under a shim; its files live in ``directory``."""

    directory: Path
    started_at: str
    container_id: str
    shim: subprocess.Popen[bytes] | None = None
    shim_pid: int = 0

    def pid(self) -> int | None:
        try:
            return int((self.directory / "pid").read_text())
        except (OSError, ValueError):
            return None

    def alive(self) -> bool:
        if self.shim is not None:
            return self.shim.poll() is None
        try:
            os.kill(self.shim_pid, 0)
        except OSError:
            return False
        return True

    def exit_code(self) -> int | None:
        """The container's exit code once it ended (137 if its shim died first)."""
        if self.alive():
            return None
        try:
            return int((self.directory / "exit").read_text())
        except (OSError, ValueError):
            return 137

    def signal(self, signum: int) -> None:
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(OSError):
                os.killpg(pid, signum)


@attrs.define
class PodState:
    """What the agent knows of one pod it runs, kept on disk for a restarted agent."""

    directory: Path
    ip: str
    #: "namespace/name" of the pod, for people and tests reading the state directory.
    pod: str = ""
    restart_count: int = 0
    container: Container | None = None
    last_exit: dict[str, Any] | None = None
    #: When to start the container (again): crash-loop back-off, or a config error's retry.
    next_start: float = 0.0
    backoff: float = RESTART_BACKOFF[0]
    term_sent_at: float = 0.0
    terminal: bool = False
    deleted_at: float = 0.0
    config_error: str = ""

    def save(self) -> None:
        data: dict[str, Any] = {
            "ip": self.ip,
            "pod": self.pod,
            "restartCount": self.restart_count,
            "terminal": self.terminal,
        }
        if self.container is not None:
            data["container"] = {
                "directory": self.container.directory.name,
                "startedAt": self.container.started_at,
                "containerID": self.container.container_id,
                "shimPid": self.container.shim.pid
                if self.container.shim
                else self.container.shim_pid,
            }
        (self.directory / "state.json").write_text(json.dumps(data))

    @classmethod
    def load(cls, directory: Path) -> "PodState":
        data = json.loads((directory / "state.json").read_text())
        state = cls(
            directory, data["ip"], data["pod"], data["restartCount"], terminal=data["terminal"]
        )
        if saved := data.get("container"):
            state.container = Container(
                directory / saved["directory"],
                saved["startedAt"],
                saved["containerID"],
                shim_pid=saved["shimPid"],
            )
        return state


@attrs.define
class NodeAgent:
    state_dir: Path
    node: kubernetes.client.ApiClient
    scheduler: kubernetes.client.ApiClient
    server: str
    ca_file: Path
    base_env: dict[str, str]
    name: str = NODE_NAME
    #: kwok's trick, for benchmarks of the control path: no process at all; each pod
    #: is marked Running at once and Succeeded (exit 0) this many seconds later.
    #: None: pods run (the default).
    simulate: float | None = None
    #: Simulated pods: uid → (startedAt as written, monotonic start, its Running write).
    simulated: dict[str, tuple[str, float, concurrent.futures.Future[None]]] = attrs.field(
        factory=dict
    )
    #: Bindings and simulated pods' status writes go out together, as kube-scheduler
    #: binds and kubelets write in parallel: one at a time, the agent fell seconds
    #: behind 20 pods a second and bounded every benchmark of the control path.
    writers: concurrent.futures.ThreadPoolExecutor = attrs.field(
        factory=lambda: concurrent.futures.ThreadPoolExecutor(WRITERS, "writer")
    )
    pods: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    states: dict[str, PodState] = attrs.field(factory=dict)
    synced: threading.Event = attrs.field(factory=threading.Event)
    changed: threading.Event = attrs.field(factory=threading.Event)
    stopping: threading.Event = attrs.field(factory=threading.Event)
    lock: threading.Lock = attrs.field(factory=threading.Lock)

    @property
    def core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.node)

    # -- the Node ------------------------------------------------------------------------------

    def node_status(self) -> dict[str, Any]:
        at = podspec.now()
        resources = {"cpu": str(os.cpu_count() or 1), "memory": _memory(), "pods": "110"}
        return {
            "capacity": resources,
            "allocatable": resources,
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": self.name},
            ],
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "the embedded node agent is posting ready status",
                    "lastHeartbeatTime": at,
                    "lastTransitionTime": at,
                }
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "embedded",
                "kubeProxyVersion": "",
                "containerRuntimeVersion": "downloadjobs-embedded://shim",
                "kernelVersion": os.uname().release,
                "osImage": "local processes",
                "bootID": "",
                "machineID": "",
                "systemUUID": "",
            },
        }

    def register(self) -> None:
        body = {
            "metadata": {
                "name": self.name,
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                },
            },
            "status": self.node_status(),
        }
        try:
            self.core.create_node(body)
        except kubernetes.client.ApiException as exc:
            if exc.status != 409:
                raise
        self.heartbeat()

    def heartbeat(self) -> None:
        self.core.patch_node_status(
            self.name, {"status": self.node_status()}, _content_type=STRATEGIC
        )
        leases = kubernetes.client.CoordinationV1Api(self.node)
        spec = {
            "holderIdentity": self.name,
            "leaseDurationSeconds": 40,
            "renewTime": podspec.now(micro=True),
        }
        try:
            leases.patch_namespaced_lease(self.name, "kube-node-lease", {"spec": spec})
        except kubernetes.client.ApiException as exc:
            if exc.status != 404:
                raise
            body = {"metadata": {"name": self.name}, "spec": spec}
            leases.create_namespaced_lease("kube-node-lease", body)

    def _heartbeats(self) -> None:
        while not self.stopping.wait(HEARTBEAT_SECONDS):
            try:
                self.heartbeat()
            except Exception:
                logger.exception("heartbeat failed")

    # -- scheduling: one node, so binding is the whole decision ---------------------------------

    def _bind_forever(self) -> None:
        api = kubernetes.client.CoreV1Api(self.scheduler)
        selector = "spec.nodeName=,status.phase!=Succeeded,status.phase!=Failed"
        for event in _watch(api.list_pod_for_all_namespaces, selector, self.stopping):
            pod = event["object"]
            meta = pod["metadata"]
            if event["type"] == "DELETED" or meta.get("deletionTimestamp"):
                continue
            if (pod["spec"].get("schedulerName") or "default-scheduler") != "default-scheduler":
                continue
            binding = {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": meta["name"], "uid": meta["uid"]},
                "target": {"apiVersion": "v1", "kind": "Node", "name": self.name},
            }
            self._submit(self._bind, api, meta["namespace"], binding)

    @staticmethod
    def _bind(api: kubernetes.client.CoreV1Api, namespace: str, binding: dict[str, Any]) -> None:
        name = binding["metadata"]["name"]
        try:
            kube.read_through(
                api.create_namespaced_pod_binding(name, namespace, binding, _preload_content=False)
            )
        except kubernetes.client.ApiException as exc:
            if exc.status not in (404, 409):
                logger.warning("binding %s/%s: %s", namespace, name, exc)

    def _submit(self, fn: Any, *args: Any) -> concurrent.futures.Future[None]:
        """Run ``fn`` on a writer thread; an error is logged, as the loop logs its own."""
        future: concurrent.futures.Future[None] = self.writers.submit(fn, *args)
        future.add_done_callback(_log_failure)
        return future

    # -- the pods bound here -------------------------------------------------------------------

    def _inform_forever(self) -> None:
        for event in _watch(
            self.core.list_pod_for_all_namespaces,
            f"spec.nodeName={self.name}",
            self.stopping,
            on_list=self._replace_all,
        ):
            pod = event["object"]
            uid = pod["metadata"]["uid"]
            with self.lock:
                if event["type"] == "DELETED":
                    self.pods.pop(uid, None)
                else:
                    self.pods[uid] = pod
            self.changed.set()

    def _replace_all(self, pods: list[dict[str, Any]]) -> None:
        with self.lock:
            self.pods = {pod["metadata"]["uid"]: pod for pod in pods}
        self.synced.set()
        self.changed.set()

    def run(self) -> None:
        self.adopt()
        self.register()
        for target in (self._heartbeats, self._bind_forever, self._inform_forever):
            threading.Thread(target=target, daemon=True, name=target.__name__).start()
        self.synced.wait()
        while not self.stopping.is_set():
            self.changed.wait(0.5)
            self.changed.clear()
            with self.lock:
                pods = dict(self.pods)
            for pod in pods.values():
                try:
                    self.sync(pod)
                except Exception:
                    logger.exception("syncing pod %s", pod["metadata"].get("name"))
            for uid in set(self.states) - set(pods):
                self.forget(uid)

    def adopt(self) -> None:
        """Take over the containers of a previous agent: their shims outlived it."""
        for state_file in sorted(self.state_dir.glob("*/state.json")):
            try:
                state = PodState.load(state_file.parent)
            except (OSError, ValueError, KeyError):
                continue
            self.states[state_file.parent.name] = state
            logger.info("adopted pod %s", state_file.parent.name)

    def forget(self, uid: str) -> None:
        """A pod gone from the API server: stop what is left of it, remove its files."""
        state = self.states.pop(uid)
        self.simulated.pop(uid, None)
        if state.container is not None and state.container.alive():
            state.container.signal(signal.SIGKILL)
        subprocess.run(["rm", "-rf", str(state.directory)], check=False)

    def sync(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        finished = ((pod.get("status") or {}).get("phase") or "Pending") in ("Succeeded", "Failed")
        deleting = bool(pod["metadata"].get("deletionTimestamp"))
        state = self.states.get(uid)
        if state is None:
            if finished and not deleting:
                return
            state = self.states[uid] = self._new_state(pod)
            state.terminal = finished
        if deleting:
            self._terminate(pod, state)
            return
        if state.terminal:
            return
        if self.simulate is not None:
            self._simulate(pod, state, self.simulate)
            return
        container = state.container
        if container is None or state.next_start:
            if time.monotonic() >= state.next_start:
                self._start(pod, state)
            return
        code = container.exit_code()
        if code is None:
            return
        terminated = podspec.terminated_state(code, container.started_at, container.container_id)
        if podspec.restarts(pod, code):
            state.last_exit = terminated
            state.next_start = time.monotonic() + state.backoff
            message = f"back-off {state.backoff:.0f}s restarting failed container"
            state.backoff = min(state.backoff * 2, RESTART_BACKOFF[1])
            status = podspec.waiting_status(
                pod, "CrashLoopBackOff", message, state.restart_count, terminated
            )
            self._write_status(pod, status)
        else:
            phase = podspec.final_phase(pod, code)
            self._write_status(
                pod, podspec.terminated_status(pod, terminated, state.restart_count, phase)
            )
            state.terminal = True
            state.save()

    def _simulate(self, pod: dict[str, Any], state: PodState, seconds: float) -> None:
        """Running at once, Succeeded ``seconds`` later: the status, without a process."""
        uid = pod["metadata"]["uid"]
        container_id = f"simulated://{uid}"
        if uid not in self.simulated:
            started_at = podspec.now()
            status = podspec.running_status(pod, state.ip, started_at, 0, container_id)
            running = self._submit(self._write_status, pod, status)
            running.add_done_callback(lambda _: self.changed.set())  # look again, for the end
            self.simulated[uid] = (started_at, time.monotonic(), running)
            return
        started_at, since, running = self.simulated[uid]
        if time.monotonic() - since < seconds or not running.done():
            return  # (never Succeeded before the Running write has landed)
        terminated = podspec.terminated_state(0, started_at, container_id)
        phase = podspec.final_phase(pod, 0)
        status = podspec.terminated_status(pod, terminated, 0, phase)
        self._submit(self._write_status, pod, status)
        state.terminal = True
        state.save()

    def _new_state(self, pod: dict[str, Any]) -> PodState:
        meta = pod["metadata"]
        directory = self.state_dir / meta["uid"]
        directory.mkdir(parents=True, exist_ok=True)
        used = {state.ip for state in self.states.values()}
        for index in range(2, 65536):
            ip = f"127.0.{1 + index // 254}.{1 + index % 254}"
            if ip not in used:
                break
        state = PodState(directory, ip, f"{meta['namespace']}/{meta['name']}")
        state.save()
        return state

    def _start(self, pod: dict[str, Any], state: PodState) -> None:
        meta = pod["metadata"]
        containers = pod["spec"]["containers"]
        if len(containers) != 1 or pod["spec"].get("initContainers"):
            message = "the node agent runs pods of one container and no init containers"
            self._write_status(pod, podspec.waiting_status(pod, "CreateContainerError", message))
            state.terminal = True
            return
        container = containers[0]
        attempt = state.restart_count + (1 if state.container is not None else 0)
        try:
            base = {**self.base_env, **self._token_env(pod, state)}
            # The addresses a kubelet knows before the container starts (fieldRef
            # status.podIP resolves to them), though the status saying so comes after.
            addresses = {"podIP": state.ip, "hostIP": "127.0.0.1"}
            started = {**pod, "status": {**(pod.get("status") or {}), **addresses}}
            env = podspec.container_env(started, container, self._lookup, base)
            argv = podspec.container_argv(container, env)
        except (podspec.ConfigError, kubernetes.client.ApiException) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if message != state.config_error:
                state.config_error = message
                status = podspec.waiting_status(pod, "CreateContainerConfigError", message)
                self._write_status(pod, status)
            state.next_start = time.monotonic() + 2
            return
        directory = state.directory / str(attempt)
        directory.mkdir(parents=True, exist_ok=True)
        cwd = container.get("workingDir") or str(directory)
        Path(cwd).mkdir(parents=True, exist_ok=True)
        spec = {"argv": argv, "env": env, "cwd": cwd}
        (directory / "container.json").write_text(json.dumps(spec))
        with (directory / "shim.log").open("ab") as log:
            shim = subprocess.Popen(
                [sys.executable, "-m", "downloadjobs_embedded.shim", str(directory)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        container_id = f"embedded://{meta['uid']}/{attempt}"
        state.container = Container(directory, podspec.now(), container_id, shim, shim.pid)
        state.restart_count = attempt
        state.next_start = 0.0
        state.config_error = ""
        state.save()
        status = podspec.running_status(
            pod, state.ip, state.container.started_at, attempt, container_id, state.last_exit
        )
        self._write_status(pod, status)
        logger.info("started %s/%s (%s)", meta["namespace"], meta["name"], " ".join(argv[:3]))

    def _terminate(self, pod: dict[str, Any], state: PodState) -> None:
        """Graceful deletion: SIGTERM, the grace period, SIGKILL, final status, delete."""
        meta = pod["metadata"]
        container = state.container
        if container is not None and container.alive():
            if not state.term_sent_at:
                state.term_sent_at = time.monotonic()
                container.signal(signal.SIGTERM)
            grace = meta.get("deletionGracePeriodSeconds")
            grace = 30 if grace is None else int(grace)
            if time.monotonic() - state.term_sent_at >= grace:
                container.signal(signal.SIGKILL)
            return
        if not state.terminal:
            code = container.exit_code() if container is not None else None
            code = 137 if code is None else code
            started = container.started_at if container is not None else podspec.now()
            cid = container.container_id if container is not None else ""
            terminated = podspec.terminated_state(code, started, cid)
            phase = podspec.final_phase(pod, code)
            self._write_status(
                pod, podspec.terminated_status(pod, terminated, state.restart_count, phase)
            )
            state.terminal = True
            state.save()
        if time.monotonic() - state.deleted_at > 5:
            state.deleted_at = time.monotonic()
            options = {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}}
            try:
                response = self.core.delete_namespaced_pod(
                    meta["name"], meta["namespace"], body=options, _preload_content=False
                )
                kube.read_through(response)
            except kubernetes.client.ApiException as exc:
                if exc.status not in (404, 409):
                    raise

    # -- I/O for the pure rules ----------------------------------------------------------------

    def _write_status(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        meta = pod["metadata"]
        body = {"metadata": {"uid": meta["uid"]}, "status": status}
        try:
            response = self.core.patch_namespaced_pod_status(
                meta["name"],
                meta["namespace"],
                body,
                _content_type=STRATEGIC,
                _preload_content=False,
            )
            kube.read_through(response)
        except kubernetes.client.ApiException as exc:
            if exc.status not in (404, 409):
                raise

    def _lookup(self, kind: str, namespace: str, name: str, key: str | None) -> Any:
        """One key of a Secret or ConfigMap (all of it when ``key`` is None), or None."""
        try:
            if kind == "Secret":
                raw = self.core.read_namespaced_secret(name, namespace, _preload_content=False)
                obj = json.loads(raw.data)
                data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
                data.update(obj.get("stringData") or {})
            else:
                raw = self.core.read_namespaced_config_map(name, namespace, _preload_content=False)
                data = json.loads(raw.data).get("data") or {}
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return data if key is None else data.get(key)

    def _token_env(self, pod: dict[str, Any], state: PodState) -> dict[str, str]:
        """
        The pod's own credentials: a token from the TokenRequest API, bound to the
        pod, for its ServiceAccount, written where the projected volume would put it,
        and a kubeconfig that reads it (the path the volume names cannot be mounted).
        """
        projection = podspec.token_projection(pod)
        if projection is None:
            return {}
        volume, source = projection
        meta = pod["metadata"]
        spec: dict[str, Any] = {
            "audiences": [source["audience"]] if source.get("audience") else [],
            "expirationSeconds": int(source.get("expirationSeconds") or TOKEN_SECONDS),
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "uid": meta["uid"],
            },
        }
        response = self.core.create_namespaced_service_account_token(
            pod["spec"].get("serviceAccountName") or "default",
            meta["namespace"],
            {"spec": spec},
            _preload_content=False,
        )
        token = json.loads(response.data)["status"]["token"]
        directory = state.directory / "volumes" / volume
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "token").write_text(token)
        (directory / "namespace").write_text(meta["namespace"])
        (directory / "ca.crt").write_bytes(self.ca_file.read_bytes())
        kubeconfig = directory / "kubeconfig"
        kubeconfig.write_text(  # JSON is YAML, and the worker reads it without a YAML parser
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "cluster",
                            "cluster": {
                                "server": self.server,
                                "certificate-authority": str(directory / "ca.crt"),
                            },
                        }
                    ],
                    "users": [{"name": "pod", "user": {"tokenFile": str(directory / "token")}}],
                    "contexts": [
                        {
                            "name": "pod",
                            "context": {
                                "cluster": "cluster",
                                "user": "pod",
                                "namespace": meta["namespace"],
                            },
                        }
                    ],
                    "current-context": "pod",
                },
                indent=2,
            )
        )
        return {"KUBECONFIG": str(kubeconfig)}


def _log_failure(future: concurrent.futures.Future[None]) -> None:
    if (error := future.exception()) is not None:
        logger.error("a write to the API server failed: %s", error)


def _memory() -> str:
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return "8Gi"
    return f"{pages // 1024}Ki"


def _watch(list_fn: Any, selector: str, stopping: threading.Event, on_list: Any = None) -> Any:
    """
    List, then watch from the list's resourceVersion; relist after any error, a
    ``410 Gone`` included. Yields ``{"type", "object"}`` with plain dicts.
    """
    while not stopping.is_set():
        try:
            raw = list_fn(field_selector=selector, _preload_content=False)
            listing = json.loads(raw.data)
            items = listing.get("items") or []
            if on_list is not None:
                on_list(items)
            else:
                for item in items:
                    yield {"type": "ADDED", "object": item}
            version = listing["metadata"]["resourceVersion"]
            watcher = kubernetes.watch.Watch()
            for event in watcher.stream(
                list_fn,
                field_selector=selector,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=300,
            ):
                if event["type"] == "BOOKMARK":
                    continue
                if event["type"] == "ERROR":
                    break
                yield {"type": event["type"], "object": event["raw_object"]}
                if stopping.is_set():
                    return
        except Exception as exc:  # the API server restarting, a 410: relist
            logger.info("watch of pods (%s) ended: %s; relisting", selector, exc)
            stopping.wait(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nodeagent", description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--kubeconfig", required=True, help="the node's own identity")
    parser.add_argument("--scheduler-kubeconfig", required=True, help="for pods/binding")
    parser.add_argument("--ca-file", type=Path, required=True)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument(
        "--simulate",
        type=float,
        default=None,
        metavar="SECONDS",
        help="run no process: mark each pod Running, then Succeeded SECONDS later (benchmarks)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    node = kubernetes.config.new_client_from_config(config_file=args.kubeconfig)
    scheduler = kubernetes.config.new_client_from_config(config_file=args.scheduler_kubeconfig)
    base_env = dict(item.split("=", 1) for item in args.env)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    agent = NodeAgent(
        args.state_dir,
        node,
        scheduler,
        node.configuration.host,
        args.ca_file,
        base_env,
        simulate=args.simulate,
    )
    # Containers outlive the agent, as they outlive a kubelet: a restarted agent adopts them.
    signal.signal(signal.SIGTERM, lambda *_: agent.stopping.set())
    agent.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())


def running_containers(state_dir: Path) -> list[tuple[str, int]]:
    """(pod name, pid) of every container process alive under ``state_dir``."""
    found = []
    for state_file in state_dir.glob("*/state.json"):
        try:
            state = PodState.load(state_file.parent)
        except (OSError, ValueError, KeyError):
            continue
        pid = state.container.pid() if state.container is not None else None
        if pid is None:
            continue
        try:
            os.kill(pid, 0)
        except OSError:
            continue
        found.append((state.pod.partition("/")[2], pid))
    return found


def stop_all_containers(state_dir: Path) -> None:
    """SIGKILL every container the agent left running (the stack's shutdown, not a kubelet's)."""
    for pid_file in state_dir.glob("*/*/pid"):
        with contextlib.suppress(OSError, ValueError):
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)
