"""
Bundle throughput of the worker against the limit of this machine and S3 endpoint.

For each size, S3 is a server over HTTP on localhost (moto_server, or with
``--s3 seaweedfs`` SeaweedFS's S3 gateway, see ``s3servers.py``), seeded with random
(incompressible, like the real .zip sources) files. Two separate processes copy
the same source bytes, one after the other, measured the same way by
``measure.py`` (wall time from spawn to exit, peak RSS from ``wait4``):

- the worker, ``python -m downloadjobs_cli worker``, exactly as a Job's pod runs
  it: it reads its DownloadJob from the embedded cluster's kube-apiserver
  (upstream's, with etcd, as ``downloadjobs dev`` runs them), writes throttled
  progress there, builds and uploads the ZIP and writes the result;
- the baseline, ``benchmarks/copy_baseline.py``: streaming GET → multipart PUT
  with the same client, part size and upload concurrency, nothing else.

The worker's bundle is then checked (CRC-32 and size against its status, entry
names and order, every CRC) before both objects are deleted. Each pair runs
``REPEATS`` times (or ``--repeat``), alternating which goes first; the best time
of each counts.

The ``resume`` case builds the 16x64MiB bundle three times: once uninterrupted,
once SIGKILLed when its status passes 80 %, and once more as the Job's next pod
would, which continues the killed one's upload. It reports the second pod's
bytes read from sources over the bundle's size (``resume_reread_fraction``, as
the worker counts them) and its time over the uninterrupted run's
(``resume_time_ratio``).

The last line printed is one JSON object with the figures.

Usage: ``python benchmarks/bundle.py [--repeat N] [--only NAME ...] [--s3 moto|seaweedfs]``.
"""

import argparse
import base64
import contextlib
import dataclasses
import datetime
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kubernetes
from s3servers import SERVERS, serve

from downloadjobs import model, s3
from downloadjobs.settings import S3Settings
from downloadjobs_embedded import s3server
from downloadjobs_embedded.stack import Stack
from downloadjobs_worker.settings import WorkerSettings

MiB = 1024 * 1024
HERE = Path(__file__).resolve().parent
NAMESPACE = "bench"

#: name -> the request, in order: (file id, size in bytes or None for a missing file).
Scenario = list[tuple[int, int | None]]


def uniform(count: int, size: int, first_id: int) -> Scenario:
    return [(first_id + i, size) for i in range(count)]


def mixed() -> Scenario:
    """
    1.1 GiB of mixed sizes, some missing: the 64 MiB and some 4 MiB files of the other
    sizes (already in S3, so seeding stays short) between new ones from 20 KiB to
    33 MiB whose sizes fall off part and chunk boundaries.
    """
    odd_mib = [0.02, 0.1, 0.5, 1, 2.5, 7, 11, 17, 33]
    odd = [(30000 + i, int(mib * MiB) + 7919 * (i + 1) % 4096) for i, mib in enumerate(odd_mib)]
    big = uniform(16, 64 * MiB, 20000)
    small = uniform(8, 4 * MiB, 10000)
    missing: Scenario = [(39990 + i, None) for i in range(4)]
    request: Scenario = []
    for index, item in enumerate(big):
        request.append(item)
        if index < len(small):
            request.append(small[index])
        if index < len(odd):
            request.append(odd[index])
        if index % 4 == 1:
            request.append(missing[index // 4])
    return request


SCENARIOS: dict[str, Scenario] = {
    "64x4MiB": uniform(64, 4 * MiB, 10000),
    "16x64MiB": uniform(16, 64 * MiB, 20000),
    "mixed": mixed(),
}
#: Runs of each size by default (best time counts): the 256 MiB one is short enough to
#: repeat, and its ratio is the one a busy machine disturbs most.
REPEATS = {"64x4MiB": 3, "16x64MiB": 1, "mixed": 1}
SMALL, LARGE = "64x4MiB", "mixed"  # the 256 MiB run and the largest, for rss_growth_mib
RESUME, RESUMED_SIZE, KILL_AT = "resume", "16x64MiB", 0.8
COMPLETE_LOG = ("completing the upload", "bundle uploaded")  # the worker's log lines


class Cluster:
    """etcd and kube-apiserver of the embedded cluster, for the worker's status writes."""

    def __init__(self, state: Path) -> None:
        self.stack = Stack(state / "cluster", namespace=NAMESPACE, control_plane_only=True)
        self.kubeconfig = self.stack.kubeconfig
        self.api: Any = None

    def __enter__(self) -> "Cluster":
        self.stack.__enter__()
        self.api = kubernetes.client.CustomObjectsApi(self.stack.client)
        return self

    def __exit__(self, *_: object) -> None:
        self.stack.__exit__(None, None, None)

    def create_job(self, name: str, file_ids: list[int]) -> None:
        body = {
            "apiVersion": model.API_VERSION,
            "kind": model.KIND,
            "metadata": {"name": name},
            "spec": {"fileIds": file_ids, "owner": "benchmark"},
        }
        self.api.create_namespaced_custom_object(
            model.GROUP, model.VERSION, NAMESPACE, model.PLURAL, body
        )

    def status(self, name: str) -> dict[str, Any]:
        obj = self.api.get_namespaced_custom_object(
            model.GROUP, model.VERSION, NAMESPACE, model.PLURAL, name
        )
        status: dict[str, Any] = obj.get("status") or {}
        return status


def measure(args: list[str], env: dict[str, str], log: Path) -> tuple[float, float, float, str]:
    """
    Run a process to its end: (seconds, peak RSS in MiB, CPU seconds, its output).

    ``measure.py`` starts it and reads its ``wait4`` usage: started from this
    process, its peak RSS would include ours (see there).
    """
    launcher = [sys.executable, str(HERE / "measure.py"), str(log), *args]
    done = subprocess.run(launcher, env=env, capture_output=True, text=True, check=False)
    text = log.read_text(errors="replace") if log.exists() else ""
    if done.returncode != 0:
        raise RuntimeError(f"measure.py failed: {done.stderr[-4000:]}")
    figures = json.loads(done.stdout)
    if figures["exit"] != 0:
        raise RuntimeError(f"{args} exited with {figures['exit']}:\n{text[-4000:]}")
    return figures["seconds"], figures["rss_mib"], figures["cpu_seconds"], text


@dataclasses.dataclass
class Bench:
    """What every size shares: the API server, S3 and the sources already there."""

    cluster: Cluster
    state: Path
    knobs: dict[str, int]
    settings: S3Settings
    env: dict[str, str]
    client: Any
    seeded: set[int] = dataclasses.field(default_factory=set)

    def seed(self, request: Scenario) -> None:
        """Random (incompressible) sources not in S3 yet, a few uploads at a time."""
        bucket = self.settings.source_bucket

        def put(file_id: int, size: int) -> None:
            key = self.settings.source_key(file_id)
            self.client.put_object(Bucket=bucket, Key=key, Body=os.urandom(size))

        todo = [(i, size) for i, size in request if size is not None and i not in self.seeded]
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda item: put(*item), todo))
        self.seeded.update(file_id for file_id, _ in todo)


def crc32_b64(value: int) -> str:
    return base64.b64encode(value.to_bytes(4, "big")).decode()


def verify(client: Any, bucket: str, key: str, status: dict[str, Any], request: Scenario) -> None:
    """The bundle is the one the status describes, a valid ZIP of the present files in order."""
    result = status["result"]
    missing = [file_id for file_id, size in request if size is None]
    assert result["missingFileIds"] == missing, result["missingFileIds"]
    crc = 0
    with tempfile.TemporaryFile() as copy:
        for chunk in client.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(MiB):
            crc = zlib.crc32(chunk, crc)
            copy.write(chunk)
        assert copy.tell() == result["size"], (copy.tell(), result["size"])
        assert crc32_b64(crc) == result["checksumCrc32"], "CRC-32 differs from the status"
        copy.seek(0)
        with zipfile.ZipFile(copy) as bundle:
            names = [f"{file_id}.zip" for file_id, size in request if size is not None]
            assert bundle.namelist() == names, "entries differ from the request"
            sizes = [size for _, size in request if size is not None]
            assert [info.file_size for info in bundle.infolist()] == sizes
            assert bundle.testzip() is None, "a CRC does not match"


@dataclasses.dataclass
class Size:
    """One size being measured: its request and what the runs took."""

    name: str
    request: Scenario
    bench: Bench
    #: (seconds, peak RSS MiB, CPU seconds) of each run
    worker_runs: list[tuple[float, float, float]] = dataclasses.field(default_factory=list)
    read_fraction: float = 0.0  # of the last worker run: bytes read from sources / bundle
    baseline_runs: list[tuple[float, float, float]] = dataclasses.field(default_factory=list)

    @property
    def source_bytes(self) -> int:
        return sum(size for _, size in self.request if size is not None)

    @property
    def ids(self) -> list[int]:
        return [file_id for file_id, _ in self.request]

    def baseline(self, job: str) -> None:
        bench = self.bench
        key = f"baseline/{job}.bin"
        args = [sys.executable, str(HERE / "copy_baseline.py"), "--key", key]
        args += ["--part-size", str(bench.knobs["part_size"])]
        args += ["--concurrency", str(bench.knobs["concurrency"]), *map(str, self.ids)]
        seconds, rss, cpu, out = measure(args, bench.env, bench.state / f"{job}-baseline.log")
        copied = json.loads(out.strip().splitlines()[-1])["bytes"]
        assert copied == self.source_bytes, (copied, self.source_bytes)
        bench.client.delete_object(Bucket=bench.settings.bundle_bucket, Key=key)
        self.baseline_runs.append((seconds, rss, cpu))

    def worker(self, job: str) -> None:
        bench = self.bench
        bench.cluster.create_job(job, self.ids)
        args = [sys.executable, "-m", "downloadjobs_cli", "worker"]
        env = {**bench.env, "DOWNLOADJOBS_JOB_NAME": job}
        seconds, rss, cpu, _ = measure(args, env, bench.state / f"{job}-worker.log")
        key = bench.settings.bundle_key(NAMESPACE, job)
        bucket = bench.settings.bundle_bucket
        verify(bench.client, bucket, key, bench.cluster.status(job), self.request)
        bench.client.delete_object(Bucket=bucket, Key=key)
        self.worker_runs.append((seconds, rss, cpu))

    def figures(self) -> dict[str, Any]:
        worker_s = min(run[0] for run in self.worker_runs)
        baseline_s = min(run[0] for run in self.baseline_runs)
        return {
            "size": self.name,
            "files": len(self.request),
            "missing": sum(1 for _, size in self.request if size is None),
            "source_mib": round(self.source_bytes / MiB, 1),
            "worker_mb_s": round(self.source_bytes / worker_s / 1e6, 1),
            "baseline_mb_s": round(self.source_bytes / baseline_s / 1e6, 1),
            "ratio": round(baseline_s / worker_s, 3),
            "worker_peak_rss_mib": round(max(run[1] for run in self.worker_runs), 1),
            "baseline_peak_rss_mib": round(max(run[1] for run in self.baseline_runs), 1),
            "worker_cpu_s": round(min(run[2] for run in self.worker_runs), 1),
            "baseline_cpu_s": round(min(run[2] for run in self.baseline_runs), 1),
        }


def run_size(name: str, request: Scenario, bench: Bench, repeat: int) -> dict[str, Any]:
    size = Size(name, request, bench)
    started = time.monotonic()
    bench.seed(request)
    print(f"{name}: sources ready in {time.monotonic() - started:.0f} s", flush=True)
    for attempt in range(repeat):
        job = f"{name.lower()}-{attempt}"
        if attempt % 2 == 0:
            size.baseline(job)
            size.worker(job)
        else:
            size.worker(job)
            size.baseline(job)
        print(
            f"{name}: run {attempt + 1}: worker {size.worker_runs[-1][0]:.2f} s, "
            f"baseline {size.baseline_runs[-1][0]:.2f} s",
            flush=True,
        )
    figures = size.figures()
    print(json.dumps(figures), flush=True)
    return figures


def run_resume(bench: Bench) -> dict[str, Any]:
    """Uninterrupted, killed at ``KILL_AT``, then resumed: what the second pod redid."""
    request = SCENARIOS[RESUMED_SIZE]
    bench.seed(request)
    size = Size(RESUME, request, bench)
    args = [sys.executable, "-m", "downloadjobs_cli", "worker"]

    def run_worker(job: str) -> tuple[float, float, float]:
        """Seconds, peak RSS and the CompleteMultipartUpload's seconds of one worker run."""
        env = {**bench.env, "DOWNLOADJOBS_JOB_NAME": job}
        seconds, rss, _, text = measure(args, env, bench.state / f"{job}-worker.log")
        key = bench.settings.bundle_key(NAMESPACE, job)
        verify(bench.client, bench.settings.bundle_bucket, key, bench.cluster.status(job), request)
        bench.client.delete_object(Bucket=bench.settings.bundle_bucket, Key=key)
        read = re.search(r"bundle uploaded: (\d+) bytes, (\d+) read from sources", text)
        assert read is not None
        size.read_fraction = int(read[2]) / int(read[1])
        stamps = [re.search(rf"^(\S+ \S+) .*{what}", text, re.M) for what in COMPLETE_LOG]
        start, end = (datetime.datetime.fromisoformat(s[1].replace(",", ".")) for s in stamps if s)
        return seconds, rss, (end - start).total_seconds()

    bench.cluster.create_job("resume-whole", size.ids)
    whole_s, _, whole_complete_s = run_worker("resume-whole")

    job = "resume-cut"
    bench.cluster.create_job(job, size.ids)
    # The pod to kill writes its progress every 0.1 s, not every second: at 100 MB/s a
    # second is a tenth of the bundle, and the kill would land anywhere from 80 to 90 %.
    env = {
        **bench.env,
        "DOWNLOADJOBS_JOB_NAME": job,
        "DOWNLOADJOBS_WORKER_PROGRESS_INTERVAL": "0.1",
    }
    with (bench.state / f"{job}-killed.log").open("wb") as log:
        first = subprocess.Popen(args, env=env, stdout=log, stderr=log, start_new_session=True)
        try:
            while first.poll() is None:
                status = bench.cluster.status(job)
                if (
                    status.get("bytesTotal")
                    and status["bytesDone"] >= KILL_AT * status["bytesTotal"]
                ):
                    break
                time.sleep(0.05)
        finally:
            if first.poll() is None:
                os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    killed = bench.cluster.status(job)
    seconds, rss, complete_s = run_worker(job)
    status = bench.cluster.status(job)
    assert status.get("resumedFromPart"), "the second pod did not resume"
    figures = {
        "size": RESUME,
        "source_mib": round(size.source_bytes / MiB, 1),
        "killed_at_percent": round(100 * killed["bytesDone"] / killed["bytesTotal"], 1),
        "resumed_after_part": status["resumedFromPart"],
        "whole_s": round(whole_s, 2),
        "resumed_s": round(seconds, 2),
        "resumed_peak_rss_mib": round(rss, 1),
        "resume_reread_fraction": round(size.read_fraction, 3),
        "resume_time_ratio": round(seconds / whole_s, 3),
        # moto's CompleteMultipartUpload copies every part in Python (about 4 s/GiB here):
        # both runs pay it in full, whatever the second re-read (SeaweedFS's does not copy)
        "whole_complete_s": round(whole_complete_s, 2),
        "resumed_complete_s": round(complete_s, 2),
        "resume_time_ratio_before_complete": round(
            (seconds - complete_s) / (whole_s - whole_complete_s), 3
        ),
    }
    print(json.dumps(figures), flush=True)
    return figures


@contextlib.contextmanager
def bench_environment(state: Path, knobs: dict[str, int], server: str) -> Iterator[Bench]:
    with Cluster(state) as cluster, serve(server, state) as endpoint:
        settings = S3Settings(endpoint_url=endpoint, path_style=True, bundle_bucket="bench-bundles")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOWNLOADJOBS_", "AWS_"))}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        env.update(s3server.CREDENTIALS)
        env.update(
            KUBECONFIG=str(cluster.kubeconfig),
            PYTHONUNBUFFERED="1",
            DOWNLOADJOBS_S3_ENDPOINT_URL=endpoint,
            DOWNLOADJOBS_S3_PATH_STYLE="true",
            DOWNLOADJOBS_S3_BUNDLE_BUCKET=settings.bundle_bucket,
            DOWNLOADJOBS_JOB_NAMESPACE=NAMESPACE,
            DOWNLOADJOBS_WORKER_PART_SIZE=str(knobs["part_size"]),
            DOWNLOADJOBS_WORKER_UPLOAD_CONCURRENCY=str(knobs["concurrency"]),
        )
        client = s3.client(settings, credentials=s3server.BOTO_CREDENTIALS)
        for bucket in (settings.source_bucket, settings.bundle_bucket):
            client.create_bucket(Bucket=bucket)
        yield Bench(cluster, state, knobs, settings, env, client)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeat", type=int, help=f"runs of each size, best counts (default: {REPEATS})"
    )
    parser.add_argument(
        "--only", nargs="*", choices=sorted([*SCENARIOS, RESUME]), help="some sizes only"
    )
    defaults = WorkerSettings(job_name="bench")
    parser.add_argument("--part-size", type=int, default=defaults.worker_part_size)
    parser.add_argument("--concurrency", type=int, default=defaults.worker_upload_concurrency)
    parser.add_argument(
        "--s3",
        choices=SERVERS,
        default="moto",
        help="the S3 server: moto_server, or SeaweedFS (built from Go modules on first use)",
    )
    args = parser.parse_args()
    knobs = {"part_size": args.part_size, "concurrency": args.concurrency}
    names = args.only or [*SCENARIOS, RESUME]
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="bundle-bench-") as tmp,
        bench_environment(Path(tmp), knobs, args.s3) as bench,
    ):
        runs = [
            run_size(name, SCENARIOS[name], bench, args.repeat or REPEATS[name])
            for name in names
            if name != RESUME
        ]
        resumed = run_resume(bench) if RESUME in names else {}
    by_name = {run["size"]: run for run in runs}
    summary: dict[str, Any] = {
        "ratio_min": min((run["ratio"] for run in runs), default=None),
        "peak_rss_mib": max((run["worker_peak_rss_mib"] for run in runs), default=None),
        "rss_growth_mib": (
            round(by_name[LARGE]["worker_peak_rss_mib"] - by_name[SMALL]["worker_peak_rss_mib"], 1)
            if SMALL in by_name and LARGE in by_name
            else None
        ),
        "resume_reread_fraction": resumed.get("resume_reread_fraction"),
        "resume_time_ratio": resumed.get("resume_time_ratio"),
        "s3": args.s3,
        "part_size": args.part_size,
        "concurrency": args.concurrency,
        "repeat": {name: args.repeat or REPEATS[name] for name in names if name in REPEATS},
        "seconds": round(time.monotonic() - started),
        "benchmark_peak_rss_mib": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        ),
        "runs": [*runs, resumed] if resumed else runs,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
