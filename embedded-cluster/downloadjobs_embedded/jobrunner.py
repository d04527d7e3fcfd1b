"""
A local stand-in for the Job controller and the kubelet.

Each ``batch/v1`` Job stored in the embedded API server is run as local
processes, one per pod attempt, with the container's command and the pod's
environment (``env``, ``envFrom`` and ``valueFrom`` resolved from Secrets and
ConfigMaps). Its status is written the way the real controller writes it:
``active``/``succeeded``/``failed``, ``startTime``/``completionTime``, the
``SuccessCriteriaMet``/``Complete`` and ``FailureTarget``/``Failed``
conditions, ``backoffLimit`` with exponential back-off, ``activeDeadlineSeconds``,
the exit-code rules of ``podFailurePolicy`` and ``ttlSecondsAfterFinished``.
A Pod object per attempt is recorded, owned by the Job, so that owner-reference
garbage collection and pod listing behave as on a cluster.
"""

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import signal
import uuid
from pathlib import Path
from typing import Any

import attrs
import kmock

from downloadjobs_embedded.apiserver import EmbeddedApiServer, decode_secret, now_rfc3339

JOBS = kmock.resource("batch", "v1", "jobs")
PODS = kmock.resource("", "v1", "pods")
SECRETS = kmock.resource("", "v1", "secrets")
CONFIGMAPS = kmock.resource("", "v1", "configmaps")

log = logging.getLogger(__name__)


def policy_action(job_spec: dict[str, Any], container: str, exit_code: int) -> str | None:
    """The action of the first ``podFailurePolicy`` rule matching an exit code, if any."""
    for rule in (job_spec.get("podFailurePolicy") or {}).get("rules", []):
        codes = rule.get("onExitCodes")
        if not codes or codes.get("containerName", container) != container:
            continue
        inside = exit_code in codes.get("values", [])
        if inside == (codes.get("operator", "In") == "In"):
            return str(rule["action"])
    return None


@attrs.define
class JobRunner:
    server: EmbeddedApiServer
    workdir: Path
    #: Environment every pod gets from "the node": PATH, and KUBECONFIG standing in for
    #: the service-account token mount (the product code loads either the same way).
    node_env: dict[str, str] = attrs.field(factory=dict)
    backoff_base: float = 10.0  # the Job controller's 10 s, 20 s, 40 s … (tests shorten it)
    backoff_cap: float = 360.0
    grace_period: float = 5.0  # terminationGracePeriodSeconds, shortened
    _tasks: dict[tuple[str, str], asyncio.Task[None]] = attrs.field(factory=dict, init=False)
    _processes: dict[tuple[str, str], asyncio.subprocess.Process] = attrs.field(
        factory=dict, init=False
    )
    _reapers: set[asyncio.Task[None]] = attrs.field(factory=set, init=False)

    async def run(self) -> None:
        """Follow Jobs and pods for ever: start admitted Jobs, stop deleted Jobs and pods."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        pods = asyncio.create_task(self._follow_pods())
        try:
            async for _, event in self.server.events(JOBS):
                job = event["object"]
                key = (job["metadata"]["namespace"], job["metadata"]["name"])
                if event["type"] == "DELETED":
                    if key in self._tasks:
                        self._tasks[key].cancel()
                    continue
                startable = not job["spec"].get("suspend") and not (job.get("status") or {}).get(
                    "startTime"
                )
                if key not in self._tasks and startable:
                    task = asyncio.create_task(self._execute(job), name=f"job {key}")
                    self._tasks[key] = task
                    task.add_done_callback(functools.partial(self._forget, key))
        finally:
            pods.cancel()
            for task in list(self._tasks.values()):
                task.cancel()
            await asyncio.gather(pods, *self._tasks.values(), return_exceptions=True)

    async def _follow_pods(self) -> None:
        """A deleted pod's process is killed, as the kubelet would (then the Job retries)."""
        async for _, event in self.server.events(PODS):
            if event["type"] == "DELETED":
                meta = event["object"]["metadata"]
                process = self._processes.get((meta["namespace"], meta["name"]))
                if process is not None:
                    self._kill(process)

    def _forget(self, key: tuple[str, str], _: asyncio.Task[None]) -> None:
        self._tasks.pop(key, None)

    @property
    def running(self) -> int:
        return len(self._tasks)

    # -- one Job --------------------------------------------------------------------------------

    def _write_status(self, job: dict[str, Any], status: dict[str, Any]) -> None:
        meta = job["metadata"]
        self.server.write_patch(
            JOBS, meta["namespace"], meta["name"], {"status": status}, subresource="status"
        )

    async def _execute(self, job: dict[str, Any]) -> None:
        meta, spec = job["metadata"], job["spec"]
        backoff_limit = int(spec.get("backoffLimit", 6))
        deadline = spec.get("activeDeadlineSeconds")
        loop = asyncio.get_running_loop()
        started = loop.time()
        failed = 0
        try:
            self._write_status(job, {"startTime": now_rfc3339(), "active": 1, "ready": 0})
            while True:
                remaining = None if deadline is None else deadline - (loop.time() - started)
                outcome, code = await self._attempt(job, remaining)
                if outcome == "deadline":
                    self._finish(
                        job,
                        False,
                        failed + 1,
                        "DeadlineExceeded",
                        "Job was active longer than specified deadline",
                    )
                    break
                if code == 0:
                    self._finish(
                        job,
                        True,
                        failed,
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                    )
                    break
                container = spec["template"]["spec"]["containers"][0]["name"]
                action = policy_action(spec, container, code)
                if action == "FailJob":
                    self._finish(
                        job,
                        False,
                        failed + 1,
                        "PodFailurePolicy",
                        f"Container {container} failed with exit code {code} matching FailJob rule",
                    )
                    break
                if action != "Ignore":
                    failed += 1
                if failed > backoff_limit:
                    self._finish(
                        job,
                        False,
                        failed,
                        "BackoffLimitExceeded",
                        "Job has reached the specified backoff limit",
                    )
                    break
                self._write_status(job, {"active": 0, "failed": failed})
                await asyncio.sleep(
                    min(self.backoff_base * 2 ** max(failed - 1, 0), self.backoff_cap)
                )
                self._write_status(job, {"active": 1})
        except kmock.KubernetesError:
            return  # the Job went away while running
        ttl = spec.get("ttlSecondsAfterFinished")
        if ttl is not None:
            await asyncio.sleep(ttl)
            with contextlib.suppress(kmock.KubernetesError):
                self.server.remove(JOBS, meta["namespace"], meta["name"])

    def _finish(
        self, job: dict[str, Any], success: bool, failed: int, reason: str, message: str
    ) -> None:
        now = now_rfc3339()
        if success:
            types = ["SuccessCriteriaMet", "Complete"]
            status: dict[str, Any] = {
                "active": 0,
                "succeeded": 1,
                "failed": failed,
                "completionTime": now,
            }
        else:
            types = ["FailureTarget", "Failed"]
            status = {"active": 0, "failed": failed}
        status["conditions"] = [
            {
                "type": t,
                "status": "True",
                "reason": reason,
                "message": message,
                "lastProbeTime": now,
                "lastTransitionTime": now,
            }
            for t in types
        ]
        self._write_status(job, status)

    async def _attempt(self, job: dict[str, Any], remaining: float | None) -> tuple[str, int]:
        """Run one pod: record it, start its process, wait for it (or the deadline)."""
        meta = job["metadata"]
        namespace = meta["namespace"]
        template = job["spec"]["template"]
        container = template["spec"]["containers"][0]
        pod_name = f"{meta['name']}-{uuid.uuid4().hex[:5]}"
        pod = self.server.insert(
            PODS,
            namespace,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod_name,
                    "namespace": namespace,
                    "labels": {
                        **(template.get("metadata", {}).get("labels") or {}),
                        "job-name": meta["name"],
                        "controller-uid": meta["uid"],
                    },
                    "ownerReferences": [
                        {
                            "apiVersion": "batch/v1",
                            "kind": "Job",
                            "name": meta["name"],
                            "uid": meta["uid"],
                            "controller": True,
                        }
                    ],
                },
                "spec": template["spec"],
            },
        )
        env = self._environment(namespace, pod, container)
        command = [*container.get("command", []), *container.get("args", [])]
        command[0] = shutil.which(command[0], path=env.get("PATH")) or command[0]
        logfile = self.workdir / f"{pod_name}.log"
        self._pod_status(pod, "Running", None)
        with logfile.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                *command,
                env=env,
                cwd=self.workdir,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
            self._processes[(namespace, pod_name)] = process
            try:
                code = await asyncio.wait_for(process.wait(), remaining)
            except TimeoutError:
                self._kill(process)
                self._pod_status(pod, "Failed", -9)
                return "deadline", -9
            except asyncio.CancelledError:
                self._kill(process)
                raise
            finally:
                self._forget_when_gone((namespace, pod_name), process)
        self._pod_status(pod, "Succeeded" if code == 0 else "Failed", code)
        log.info("pod %s/%s exited with %s (log: %s)", namespace, pod_name, code, logfile)
        return "exited", code

    def _forget_when_gone(self, key: tuple[str, str], process: asyncio.subprocess.Process) -> None:
        """Keep a process listed until it has really exited (a SIGTERM is not an exit)."""
        if process.returncode is not None:
            self._processes.pop(key, None)
            return

        async def reap() -> None:
            await process.wait()
            self._processes.pop(key, None)

        self._reapers.add(task := asyncio.get_running_loop().create_task(reap()))
        task.add_done_callback(self._reapers.discard)

    @property
    def processes(self) -> list[tuple[str, str]]:
        """(namespace, pod) of every pod process still alive."""
        return list(self._processes)

    def _kill(self, process: asyncio.subprocess.Process) -> None:
        """Stop a pod like the kubelet: SIGTERM, then SIGKILL after the grace period."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        asyncio.get_running_loop().call_later(self.grace_period, self._force, process)

    @staticmethod
    def _force(process: asyncio.subprocess.Process) -> None:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

    def _pod_status(self, pod: dict[str, Any], phase: str, code: int | None) -> None:
        state: dict[str, Any] = {"running": {"startedAt": now_rfc3339()}}
        if code is not None:
            state = {
                "terminated": {
                    "exitCode": code,
                    "finishedAt": now_rfc3339(),
                    "reason": "Completed" if code == 0 else "Error",
                }
            }
        container = pod["spec"]["containers"][0]
        status = {
            "phase": phase,
            "containerStatuses": [
                {
                    "name": container["name"],
                    "image": container["image"],
                    "imageID": "",
                    "ready": code is None,
                    "state": state,
                    "restartCount": 0,
                }
            ],
        }
        with contextlib.suppress(kmock.KubernetesError):
            meta = pod["metadata"]
            self.server.write_patch(
                PODS, meta["namespace"], meta["name"], {"status": status}, subresource="status"
            )

    def _environment(
        self, namespace: str, pod: dict[str, Any], container: dict[str, Any]
    ) -> dict[str, str]:
        env = dict(self.node_env)
        for source in container.get("envFrom") or []:
            if ref := source.get("secretRef"):
                env.update(decode_secret(self.server.read(SECRETS, namespace, ref["name"])))
            if ref := source.get("configMapRef"):
                env.update(self.server.read(CONFIGMAPS, namespace, ref["name"]).get("data") or {})
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = str(var["value"])
            elif ref := (var.get("valueFrom") or {}).get("secretKeyRef"):
                env[var["name"]] = decode_secret(self.server.read(SECRETS, namespace, ref["name"]))[
                    ref["key"]
                ]
            elif ref := (var.get("valueFrom") or {}).get("configMapKeyRef"):
                data = self.server.read(CONFIGMAPS, namespace, ref["name"]).get("data") or {}
                env[var["name"]] = data[ref["key"]]
            elif ref := (var.get("valueFrom") or {}).get("fieldRef"):
                path = ref["fieldPath"].split(".")
                value: Any = pod
                for part in path:
                    value = value.get(part, "") if isinstance(value, dict) else ""
                env[var["name"]] = str(value)
        return env
