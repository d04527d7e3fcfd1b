"""
Control-path benchmark: how long from ``POST /v1/download/initiate`` to a running
worker pod, against Jobs created straight on the API server with the same spec and
no operator (the baseline), at several offered rates.

    python benchmarks/controlplane.py [--rates 5 20 50] [--seconds 30]

Each rate gets a fresh embedded cluster (upstream kube-apiserver, etcd and
kube-controller-manager, the operator and the API as ``make dev`` runs them) whose
node agent only *simulates* pods, as kwok does for the Kubernetes project's own
scalability tests: a pod bound to the node is marked Running at once and Succeeded
``--pod-seconds`` later, with no process, so only the control path is measured.

For ``--seconds`` the load generator offers the rate open-loop (a request every
1/rate s, from a pool of threads, whatever the answers' latency): first plain Jobs
(the operator's own manifest for a DownloadJob, created unsuspended, without owner),
then initiates through the API. One watch of Jobs and one of pods (as seen by a
client of the API server) time each step: Job created, Job admitted (seen unsuspended;
a plain Job is at creation), pod created, pod Running.
The operator's running-job cap is lifted (``MAX_RUNNING``), so the queue measured
is the control path's own, not the product's admission.

A rate is *sustained* when its backlog (requests sent whose pod is not Running yet)
at the end of the window is no more than 1.5x its backlog at half-time plus one
second of arrivals, and every request reached Running within the drain time.

Each phase also counts the CPU time every process of the stack (and the load
generator) used from its first request until its last pod was Running and a few
seconds more: ``cpu_ms_per_request`` by process, their total, and ``cpu_bound_rate``,
the rate at which that cost keeps every core of the machine busy. It says which
process the cores go to, and whether a rate is out of this machine's reach whatever
the code's latency.

The last line is one JSON object: ``rate`` (the reference rate, 20/s),
``p99_ms_initiate_to_running``, ``p99_ms_plain_job_to_running``, ``overhead_ratio``
(the first over the second at the reference rate), ``max_sustained_rate`` (and
``max_sustained_plain_rate``), ``cores``, ``cpu_ms_available_per_request`` (what the
cores give a request at the reference rate), ``cpu_ms_per_initiate`` and
``cpu_ms_per_plain_job`` (what one cost there), and per rate every figure measured.
"""

import argparse
import concurrent.futures
import json
import math
import os
import resource
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from downloadjobs.settings import S3Settings
from downloadjobs_embedded.stack import Stack
from downloadjobs_operator.manifests import build_job, job_name
from downloadjobs_operator.settings import OperatorSettings

NAMESPACE = "default"
REFERENCE_RATE = 20
FILE_IDS = [70000, 70001, 70002]
#: The label the Job controller puts on its pods (batch/v1).
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


class Watcher:
    """Watches of Jobs and pods in the namespace; first-seen times by Job name."""

    def __init__(self, server: str, token: str, ca: str) -> None:
        self.client = httpx.Client(
            base_url=server,
            headers={"Authorization": f"Bearer {token}"},
            verify=ca,
            timeout=httpx.Timeout(10.0, read=None),
        )
        self.job_created: dict[str, float] = {}
        self.admitted: dict[str, float] = {}  # first seen unsuspended (plain: at creation)
        self.pod_created: dict[str, float] = {}
        self.running: dict[str, float] = {}
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def start(self) -> None:
        for path, on_event in (
            (f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs", self._job),
            (f"/api/v1/namespaces/{NAMESPACE}/pods", self._pod),
        ):
            ready = threading.Event()
            thread = threading.Thread(target=self._watch, args=(path, on_event, ready), daemon=True)
            thread.start()
            ready.wait(30)

    def stop(self) -> None:
        self.stopping.set()

    def _watch(self, path: str, on_event: Any, ready: threading.Event) -> None:
        version = self.client.get(path, params={"limit": 1}).json()["metadata"]["resourceVersion"]
        while not self.stopping.is_set():
            params = {
                "watch": "1",
                "resourceVersion": version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": "600",
            }
            try:
                with self.client.stream("GET", path, params=params) as response:
                    ready.set()
                    for line in response.iter_lines():
                        if not line:
                            continue
                        event = json.loads(line)
                        seen = time.monotonic()
                        obj = event["object"]
                        if event["type"] == "ERROR":
                            break
                        version = obj["metadata"].get("resourceVersion", version)
                        if event["type"] in ("ADDED", "MODIFIED"):
                            on_event(obj, seen)
                        if self.stopping.is_set():
                            return
            except httpx.TransportError:
                if self.stopping.is_set():
                    return  # the stack stopped: its API server closed the watch
                raise

    def _job(self, job: dict[str, Any], seen: float) -> None:
        with self.lock:
            self.job_created.setdefault(job["metadata"]["name"], seen)
            if not job.get("spec", {}).get("suspend"):
                self.admitted.setdefault(job["metadata"]["name"], seen)

    def _pod(self, pod: dict[str, Any], seen: float) -> None:
        name = (pod["metadata"].get("labels") or {}).get(JOB_NAME_LABEL)
        if not name:
            return
        with self.lock:
            self.pod_created.setdefault(name, seen)
            if (pod.get("status") or {}).get("phase") in ("Running", "Succeeded"):
                self.running.setdefault(name, seen)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def offer(rate: float, seconds: float, send: Any, sent: dict[str, float]) -> None:
    """Open loop: ``send(i)`` every 1/rate s from a pool; ``sent`` gets name → send time."""
    count = int(rate * seconds)
    start = time.monotonic()
    lock = threading.Lock()

    def one(i: int) -> None:
        at = time.monotonic()
        name = send(i)
        with lock:
            sent[name] = at

    with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
        futures = []
        for i in range(count):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(one, i))
        for future in futures:
            future.result()


def summarise(
    watcher: Watcher, sent: dict[str, float], rate: float, seconds: float, start: float
) -> dict[str, Any]:
    with watcher.lock:
        steps = {
            "job_created": watcher.job_created,
            "admitted": watcher.admitted,
            "pod_created": watcher.pod_created,
            "running": watcher.running,
        }
        out: dict[str, Any] = {"requests": len(sent)}
        for step, seen in steps.items():
            # A request that never got there counts as infinitely late: a percentile
            # that falls on one is null, not the figure of the lucky ones.
            latencies = [1000 * (seen[n] - t) if n in seen else math.inf for n, t in sent.items()]
            for q in (50, 99):
                value = percentile(latencies, q)
                out[f"p{q}_ms_to_{step}"] = round(value, 1) if math.isfinite(value) else None
        running = dict(watcher.running)

    def backlog(at: float) -> int:
        return sum(1 for n, t in sent.items() if t <= at and running.get(n, float("inf")) > at)

    middle, end = backlog(start + seconds / 2), backlog(start + seconds)
    reached = sum(1 for n in sent if n in running)
    out.update(
        backlog_at_half=middle,
        backlog_at_end=end,
        reached_running=reached,
        sustained=reached == len(sent) and end <= 1.5 * middle + rate,
    )
    return out


def drain(watcher: Watcher, sent: dict[str, float], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with watcher.lock:
            if all(n in watcher.running for n in sent):
                return
        time.sleep(0.5)


#: Seconds after the last pod is Running that a phase's CPU is still counted: its pods
#: end (``--pod-seconds``) and their Jobs complete, work the request caused too.
SETTLE_SECONDS = 5.0


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """
    CPU time (user and system) each process of the stack has used, and this load
    generator ("bench"), from ``/proc``: what each step of the path costs, whatever
    the machine's cores, and which process the cores run out on.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    used = {"bench": sum(resource.getrusage(resource.RUSAGE_SELF)[:2])}
    for name, popen in stack.processes.items():
        try:
            fields = Path(f"/proc/{popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        used[name] = (int(fields[11]) + int(fields[12])) / ticks
    return used


def cpu_cost(before: dict[str, float], after: dict[str, float], requests: int) -> dict[str, Any]:
    """CPU milliseconds a request cost each process, their total, and the rate it bounds."""
    per = {
        name: round(1000 * (after[name] - before.get(name, 0.0)) / requests, 2)
        for name in sorted(after)
        if requests
    }
    total = round(sum(per.values()), 1)
    cores = os.cpu_count() or 1
    return {
        "cpu_ms_per_request": per,
        "cpu_ms_per_request_total": total,
        # At this cost every core is busy: the rate no code on this machine gets past.
        "cpu_bound_rate": round(1000 * cores / total, 1) if total else None,
    }


def run_rate(
    rate: float,
    seconds: float,
    pod_seconds: float,
    drain_s: float,
    keep: Path | None,
    kcm_flags: list[str],
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="dj-bench-cp-") as tmp:
        if keep is not None:  # the stack's logs and audit log, to see where time goes
            tmp = str(keep / f"rate-{rate:g}")
        operator_env = {
            # Every request asks for the same files: reuse would answer most of them
            # from the first one's bundle, and this measures the path of a new build.
            "DOWNLOADJOBS_OPERATOR_REUSE_BUNDLES": "false",
            "DOWNLOADJOBS_OPERATOR_MAX_RUNNING": "1000000",
            "DOWNLOADJOBS_API_MAX_ACTIVE_JOBS_PER_OWNER": "1000000",
        }
        with Stack(
            Path(tmp),
            simulate_pods=pod_seconds,
            extra_env=operator_env,
            controller_manager_flags=kcm_flags,
        ) as stack:
            config = yaml.safe_load(stack.kubeconfig.read_text())
            token = config["users"][0]["user"]["token"]
            assert stack.control is not None
            watcher = Watcher(stack.kube_url, token, str(stack.control.ca_file))
            watcher.start()
            settings = OperatorSettings()
            kube = httpx.Client(
                base_url=stack.kube_url,
                headers={"Authorization": f"Bearer {token}"},
                verify=str(stack.control.ca_file),
                timeout=60,
                limits=httpx.Limits(max_connections=64),
            )
            api = httpx.Client(
                base_url=stack.api_url, timeout=60, limits=httpx.Limits(max_connections=64)
            )

            def plain(i: int) -> str:
                body = {
                    "metadata": {"name": f"plain-{i:05d}", "namespace": NAMESPACE, "uid": "-"},
                    "spec": {"fileIds": FILE_IDS},
                }
                manifest = build_job(body, S3Settings(), settings)
                manifest["metadata"].pop("ownerReferences")
                manifest["metadata"]["labels"] = {"bench": "plain"}
                manifest["spec"]["template"]["metadata"]["labels"] = {"bench": "plain"}
                manifest["spec"]["suspend"] = False
                response = kube.post(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs", json=manifest)
                assert response.status_code == 201, response.text
                return str(manifest["metadata"]["name"])

            def initiate(i: int) -> str:
                response = api.post("/v1/download/initiate", json={"file_ids": FILE_IDS})
                assert response.status_code == 202, response.text
                return job_name(response.json()["jobId"])

            results = {}
            for label, send in (("plain", plain), ("initiate", initiate)):
                sent: dict[str, float] = {}
                cpu_before = cpu_seconds(stack)
                start = time.monotonic()
                offer(rate, seconds, send, sent)
                drain(watcher, sent, drain_s)
                results[label] = summarise(watcher, sent, rate, seconds, start)
                time.sleep(SETTLE_SECONDS)
                results[label].update(cpu_cost(cpu_before, cpu_seconds(stack), len(sent)))
                print(f"rate {rate}/s {label}: {json.dumps(results[label])}", flush=True)
            watcher.stop()
            return results


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[5, 20, 50])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--pod-seconds", type=float, default=1.0)
    parser.add_argument("--drain", type=float, default=60)
    parser.add_argument("--keep", type=Path, default=None, help="keep each stack's logs here")
    parser.add_argument(
        "--kcm-flag",
        action="append",
        default=[],
        help="a kube-controller-manager flag, e.g. --kcm-flag=--kube-api-qps=100 (repeatable)",
    )
    args = parser.parse_args()
    per_rate = {}
    for rate in args.rates:
        per_rate[rate] = run_rate(
            rate, args.seconds, args.pod_seconds, args.drain, args.keep, args.kcm_flag
        )
    reference = per_rate.get(REFERENCE_RATE) or per_rate[min(per_rate)]
    reference_rate = REFERENCE_RATE if REFERENCE_RATE in per_rate else min(per_rate)
    initiate_p99 = reference["initiate"]["p99_ms_to_running"]
    plain_p99 = reference["plain"]["p99_ms_to_running"]
    sustained = [r for r, res in per_rate.items() if res["initiate"]["sustained"]]
    plain_sustained = [r for r, res in per_rate.items() if res["plain"]["sustained"]]
    summary = {
        "rate": reference_rate,
        "p99_ms_initiate_to_running": initiate_p99,
        "p99_ms_plain_job_to_running": plain_p99,
        "overhead_ratio": ratio(initiate_p99, plain_p99),
        "p50_ratio": ratio(
            reference["initiate"]["p50_ms_to_running"], reference["plain"]["p50_ms_to_running"]
        ),
        "max_sustained_rate": max(sustained) if sustained else 0,
        "max_sustained_plain_rate": max(plain_sustained) if plain_sustained else 0,
        "cores": os.cpu_count(),
        # What the machine's cores give each request at the reference rate.
        "cpu_ms_available_per_request": round(1000 * (os.cpu_count() or 1) / reference_rate, 1),
        "cpu_ms_per_initiate": reference["initiate"]["cpu_ms_per_request_total"],
        "cpu_ms_per_plain_job": reference["plain"]["cpu_ms_per_request_total"],
        "controller_manager_flags": args.kcm_flag,
        "per_rate": {str(r): res for r, res in per_rate.items()},
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
