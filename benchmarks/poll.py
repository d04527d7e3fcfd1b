"""
Poll benchmark: status polls per second and p50/p99 latency with 10,000 cached
jobs, against a bare FastAPI route that returns a constant body of the same size,
measured in the same run on the same machine.

    python benchmarks/poll.py [--jobs 10000] [--seconds 6] [--rounds 3]

It starts what it needs: etcd and kube-apiserver of the embedded cluster, the API
(``downloadjobs api``, one uvicorn process, as a pod runs it) and the baseline
(one uvicorn process). The load generator keeps ``--concurrency`` keep-alive
connections busy for ``--seconds`` per round; rounds alternate baseline, 200
polls and 304 polls; rates and latencies are the median round of each kind, the
ratios the median of each round's ratio. The last line is
one JSON object with the figures.
"""

import argparse
import asyncio
import concurrent.futures
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import kubernetes

from downloadjobs import model
from downloadjobs_api.jobs import USER_AGENT
from downloadjobs_embedded.stack import Stack, free_port

NAMESPACE = "default"

BASELINE_APP = """
import os
from fastapi import FastAPI, Response

BODY = b"x" * int(os.environ["BODY_SIZE"])
app = FastAPI()


@app.get("/v1/download/jobs/{job_id}")
def job(job_id: str) -> Response:
    return Response(BODY, media_type="application/json")
"""


class Cluster:
    """etcd and kube-apiserver of the embedded cluster, seeded with N DownloadJobs."""

    def __init__(self, state_dir: Path) -> None:
        self.stack = Stack(state_dir, namespace=NAMESPACE, control_plane_only=True)
        self.api: Any = None

    def start(self) -> None:
        self.stack.__enter__()
        self.api = kubernetes.client.CustomObjectsApi(self.stack.client)

    def close(self) -> None:
        self.stack.__exit__(None, None, None)

    def seed(self, count: int) -> list[str]:
        """``count`` jobs: 70% processing, 20% queued, 10% completed (those presign a URL)."""
        rng = random.Random(7)
        specs = [[70000 + j for j in range(rng.randint(1, 20))] for _ in range(count)]

        def create(i: int) -> str:
            name = f"bench-{i:05d}"
            body = {
                "apiVersion": model.API_VERSION,
                "kind": model.KIND,
                "metadata": {"name": name},
                "spec": {"fileIds": specs[i], "owner": "anonymous"},
            }
            args = (model.GROUP, model.VERSION, NAMESPACE, model.PLURAL)
            self.api.create_namespaced_custom_object(*args, body)
            status = {"status": job_status(i, len(specs[i]), name)}
            self.api.patch_namespaced_custom_object_status(*args, name, status)
            return name

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            return list(pool.map(create, range(count)))

    def etags(self) -> dict[str, str]:
        return {
            o["metadata"]["name"]: f'W/"{o["metadata"]["name"]}.{o["metadata"]["resourceVersion"]}"'
            for o in self.stack.downloadjobs()
        }

    def api_requests(self) -> int:
        return self.stack.requests_by(USER_AGENT)


def job_status(i: int, files: int, name: str) -> dict[str, Any]:
    size = files * 1_048_576
    started = "2026-01-01T00:00:00Z"
    if i % 10 == 0:
        return {
            "phase": "Completed",
            "progress": 100,
            "filesDone": files,
            "filesTotal": files,
            "bytesDone": size,
            "bytesTotal": size,
            "attempts": 1,
            "startedAt": started,
            "completedAt": "2026-01-01T00:01:00Z",
            "result": {
                "bucket": "downloads-bundles",
                "key": f"bundles/{NAMESPACE}/{name}.zip",
                "size": size,
                "sha256": "0" * 64,
                "missingFileIds": [],
            },
        }
    if i % 10 in (1, 2):
        return {"phase": "Queued", "progress": 0, "queuePosition": i % 50 + 1}
    return {
        "phase": "Processing",
        "progress": 40,
        "filesDone": files // 2,
        "filesTotal": files,
        "bytesDone": size // 2,
        "bytesTotal": size,
        "attempts": 1,
        "startedAt": started,
        "heartbeatAt": started,
    }


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_ok(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


async def load(
    base: str, names: list[str], etags: dict[str, str] | None, seconds: float, concurrency: int
) -> dict[str, Any]:
    """Keep ``concurrency`` connections polling random jobs for ``seconds``."""
    latencies: list[float] = []
    codes: dict[int, int] = {}
    sizes: list[int] = []
    rng = random.Random(11)
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                name = rng.choice(names)
                headers = {"If-None-Match": etags[name]} if etags else {}
                started = time.perf_counter()
                async with session.get(f"{base}/v1/download/jobs/{name}", headers=headers) as r:
                    body = await r.read()
                latencies.append(time.perf_counter() - started)
                codes[r.status] = codes.get(r.status, 0) + 1
                if len(sizes) < 2000:
                    sizes.append(len(body))

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "per_s": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "requests": len(latencies),
        "codes": codes,
        "body_bytes": statistics.mean(sizes) if sizes else 0,
    }


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    return sorted(rounds, key=lambda r: r["per_s"])[len(rounds) // 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="poll-bench-"))
    cluster = Cluster(work / "cluster")
    cluster.start()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        t0 = time.monotonic()
        names = cluster.seed(args.jobs)
        print(f"seeded {len(names)} jobs in {time.monotonic() - t0:.1f} s", file=sys.stderr)
        kubeconfig = cluster.stack.kubeconfig
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOWNLOADJOBS_", "AWS_"))}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        env.update(
            KUBECONFIG=str(kubeconfig),
            DOWNLOADJOBS_NAMESPACE=NAMESPACE,
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            DOWNLOADJOBS_S3_ENDPOINT_URL="http://127.0.0.1:9",  # presigning needs no S3
            DOWNLOADJOBS_S3_PATH_STYLE="true",
            DOWNLOADJOBS_API_POLL_RATE="100000000/minute",  # the poll, not a 429
        )
        api_port, base_port = free_port(), free_port()
        api = f"http://127.0.0.1:{api_port}"
        baseline = f"http://127.0.0.1:{base_port}"
        cli = [sys.executable, "-m", "downloadjobs_cli", "api", "--host", "127.0.0.1"]
        processes.append(spawn([*cli, "--port", str(api_port)], env, work / "api.log"))
        wait_ok(f"{api}/ready")

        # The baseline's body is as large as the API's average status answer.
        probe = asyncio.run(load(api, names, None, 1.0, 4))
        (work / "baseline.py").write_text(BASELINE_APP)
        base_env = {**env, "BODY_SIZE": str(round(probe["body_bytes"])), "PYTHONPATH": str(work)}
        uvicorn = [sys.executable, "-m", "uvicorn", "baseline:app", "--host", "127.0.0.1"]
        processes.append(
            spawn(
                [*uvicorn, "--port", str(base_port), "--log-level", "warning"],
                base_env,
                work / "baseline.log",
            )
        )
        wait_ok(f"{baseline}/v1/download/jobs/x")
        etags = cluster.etags()

        results: dict[str, list[dict[str, Any]]] = {"baseline": [], "poll": [], "poll_304": []}
        before = cluster.api_requests()
        polls = 0
        for _ in range(args.rounds):
            for kind, url, tags in (
                ("baseline", baseline, None),
                ("poll", api, None),
                ("poll_304", api, etags),
            ):
                outcome = asyncio.run(load(url, names, tags, args.seconds, args.concurrency))
                results[kind].append(outcome)
                if kind != "baseline":
                    polls += outcome["requests"]
                print(f"{kind}: {json.dumps(outcome)}", file=sys.stderr)
        after = cluster.api_requests()

        base, poll, p304 = (median_round(results[k]) for k in ("baseline", "poll", "poll_304"))

        def paired(top: str, bottom: str) -> list[float]:
            return [
                t["per_s"] / b["per_s"] for t, b in zip(results[top], results[bottom], strict=True)
            ]

        assert set(poll["codes"]) == {200}, poll["codes"]
        assert set(p304["codes"]) == {304}, p304["codes"]
        figures = {
            "jobs": len(names),
            "polls_per_s": round(poll["per_s"], 1),
            "baseline_per_s": round(base["per_s"], 1),
            # Paired per round (the three kinds of a round ran back to back), then the
            # median: other load on the machine moves a whole round, not one kind.
            "ratio": round(statistics.median(paired("poll", "baseline")), 3),
            "p50_ms": round(poll["p50_ms"], 2),
            "p99_ms": round(poll["p99_ms"], 2),
            "baseline_p50_ms": round(base["p50_ms"], 2),
            "baseline_p99_ms": round(base["p99_ms"], 2),
            "polls_304_per_s": round(p304["per_s"], 1),
            "p50_304_ms": round(p304["p50_ms"], 2),
            "p99_304_ms": round(p304["p99_ms"], 2),
            "ratio_304_to_200": round(statistics.median(paired("poll_304", "poll")), 3),
            "body_bytes": round(poll["body_bytes"]),
            "concurrency": args.concurrency,
            "apiserver_requests_per_poll": (after - before) / max(polls, 1),
        }
        print(json.dumps(figures))
        return 0
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        cluster.close()


if __name__ == "__main__":
    sys.exit(main())
