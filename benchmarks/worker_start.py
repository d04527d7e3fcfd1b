"""
How long a worker pod takes from process start to its first S3 request, against
the floor this S3 library allows: a process that only imports boto3, creates the
same client and makes the same first request.

Both run as fresh processes through ``measure.py`` (peak RSS without this script's
own), alternating, ``--runs`` times each. A stub S3 endpoint on localhost notes the
arrival of each process's first request (CLOCK_MONOTONIC is one clock for every
process of the machine) and answers 404, so the worker finds its source missing,
writes its failure and exits; a stub Kubernetes API answers the worker's read of its
DownloadJob and its status write. Nothing else runs, so the figures are start-up
alone: imports, settings, credentials, the client, one round trip to each stub.

The last line is JSON: ``start_to_first_request_s`` (worker, median), ``baseline_s``
(median), ``ratio`` (the first over the second), ``import_s`` (median time to import
the worker's entry module, in a process of its own) and ``rss_mib`` (the worker's
median peak RSS); ``botocore_baseline_s`` and ``ratio_to_botocore`` are the same
against a third process that makes the request through botocore's session alone,
as the worker does: what is left once boto3's own layer is out of the way.

Usage: ``python benchmarks/worker_start.py [--runs N]``. To measure another version
of the worker, put its source first on ``PYTHONPATH``.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BASELINE = """
import os
import boto3
from botocore.config import Config
config = Config(
    region_name="us-east-1",
    signature_version="s3v4",
    retries={"mode": "standard", "max_attempts": 5},
    s3={"addressing_style": "path"},
    connect_timeout=5,
    read_timeout=60,
    max_pool_connections=12,
)
client = boto3.client("s3", endpoint_url=os.environ["DOWNLOADJOBS_S3_ENDPOINT_URL"], config=config)
try:
    client.head_object(Bucket="downloads-source", Key="files/70000.zip")
except client.exceptions.ClientError:
    pass
"""

#: The same request through botocore's own session, without boto3's s3transfer layer:
#: the floor of the library the worker calls (``downloadjobs.s3.client``).
BOTOCORE = BASELINE.replace("import boto3", "import botocore.session").replace(
    "boto3.client(", "botocore.session.get_session().create_client("
)

IMPORT = (
    "import time; t = time.perf_counter(); import downloadjobs_worker.main; "
    "print(time.perf_counter() - t)"
)


class Stubs:
    """A stub S3 (404 to everything, first arrival noted) and a stub Kubernetes API."""

    def __init__(self) -> None:
        self.first_s3: float | None = None
        self.lock = threading.Lock()
        stubs = self

        class S3(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                with stubs.lock:
                    if stubs.first_s3 is None:
                        stubs.first_s3 = time.monotonic()
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_HEAD = do_GET = do_PUT = do_POST = _any

            def log_message(self, *args: Any) -> None:
                pass

        class Kube(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, body: dict[str, Any]) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                meta = {"name": "job", "namespace": "default", "uid": "0"}
                self._answer({"metadata": meta, "spec": {"fileIds": [70000]}})

            def do_PATCH(self) -> None:
                self._answer({})

            def log_message(self, *args: Any) -> None:
                pass

        self.servers = [
            ThreadingHTTPServer(("127.0.0.1", 0), S3),
            ThreadingHTTPServer(("127.0.0.1", 0), Kube),
        ]
        for server in self.servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()
        self.s3_url = f"http://127.0.0.1:{self.servers[0].server_address[1]}"
        self.kube_url = f"http://127.0.0.1:{self.servers[1].server_address[1]}"

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()


def kubeconfig(directory: Path, server: str) -> Path:
    path = directory / "kubeconfig"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(json.dumps(config))
    return path


def timed(stubs: Stubs, command: list[str], env: dict[str, str], log: Path) -> dict[str, float]:
    """One fresh process: spawn to its first S3 request, and its peak RSS."""
    stubs.first_s3 = None
    before = time.monotonic()
    out = subprocess.run(
        [sys.executable, str(HERE / "measure.py"), str(log), *command],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"measure.py failed: {out.stderr[-2000:]}")
    figures = json.loads(out.stdout)
    if stubs.first_s3 is None:
        raise SystemExit(f"{command[-1][:40]} made no S3 request:\n{log.read_text()[-3000:]}")
    started = figures.get("started", before)  # measure.py's own clock reading
    return {"first_request_s": stubs.first_s3 - started, "rss_mib": figures["rss_mib"]}


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    stubs = Stubs()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig(directory, stubs.kube_url)),
            "DOWNLOADJOBS_JOB_NAME": "job",
            "DOWNLOADJOBS_JOB_NAMESPACE": "default",
            "DOWNLOADJOBS_S3_ENDPOINT_URL": stubs.s3_url,
            "DOWNLOADJOBS_S3_PATH_STYLE": "true",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
        }
        env.pop("KUBERNETES_SERVICE_HOST", None)
        # The image's pip install compiles every module: here the warm-up run writes the
        # .pyc files, or each run would compile whatever changed since the last one.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        worker = [sys.executable, "-m", "downloadjobs_cli", "worker"]
        baseline = [sys.executable, "-c", BASELINE]
        botocore = [sys.executable, "-c", BOTOCORE]
        sides: dict[str, list[dict[str, float]]] = {"worker": [], "baseline": [], "botocore": []}
        runs: list[tuple[str, Callable[[], dict[str, float]]]] = [
            ("worker", lambda: timed(stubs, worker, env, directory / "worker.log")),
            ("baseline", lambda: timed(stubs, baseline, env, directory / "baseline.log")),
            ("botocore", lambda: timed(stubs, botocore, env, directory / "botocore.log")),
        ]
        timed(stubs, worker, env, directory / "warm.log")  # page cache, .pyc files
        for run in range(args.runs):
            for name, measure in runs if run % 2 == 0 else runs[::-1]:
                figures = measure()
                sides[name].append(figures)
                print(name, json.dumps(figures), flush=True)
        imports = []
        for _ in range(args.runs):
            out = subprocess.run(
                [sys.executable, "-c", IMPORT], env=env, capture_output=True, text=True, check=True
            )
            imports.append(float(out.stdout))
    stubs.close()
    worker_s = median(sides["worker"], "first_request_s")
    baseline_s = median(sides["baseline"], "first_request_s")
    result = {
        "start_to_first_request_s": round(worker_s, 3),
        "baseline_s": round(baseline_s, 3),
        "ratio": round(worker_s / baseline_s, 3),
        "import_s": round(statistics.median(imports), 3),
        "rss_mib": round(median(sides["worker"], "rss_mib"), 1),
        "baseline_rss_mib": round(median(sides["baseline"], "rss_mib"), 1),
        "botocore_baseline_s": round(median(sides["botocore"], "first_request_s"), 3),
        "ratio_to_botocore": round(worker_s / median(sides["botocore"], "first_request_s"), 3),
        "runs": args.runs,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
