"""``downloadjobs dev``: the whole system in the foreground until Ctrl-C."""

import argparse
import signal
import threading
from pathlib import Path

MISSING_EXTRA = "`downloadjobs dev` needs the dev extra: pip install -e '.[dev]'"
#: A frontend on its own dev server (React on :5173, say) may call the dev API.
DEV_ENV = {"DOWNLOADJOBS_API_CORS_ORIGINS": "*"}


def parse_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    return int(low), int(high or low)


def run_dev(args: argparse.Namespace) -> int:
    try:
        from downloadjobs_embedded.controlplane import KUBERNETES_VERSION
        from downloadjobs_embedded.stack import Stack
    except ImportError as exc:
        raise SystemExit(f"{MISSING_EXTRA} ({exc})") from exc

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stack = Stack(
        Path(args.state_dir).resolve(),
        api_port=args.api_port,
        kube_port=args.kube_port,
        s3_port=args.s3_port,
        etcd_port=args.etcd_port,
        etcd_peer_port=args.etcd_port + 1,
        worker_delay_ms=parse_range(args.delay_ms),
        extra_env=DEV_ENV,
    )
    with stack:
        print(
            f"""
DownloadJobs is running on the embedded cluster.

  API            {stack.api_url}          (docs: {stack.api_url}/docs; CORS: any origin)
  Kubernetes     {stack.kube_url}   (kube-apiserver {KUBERNETES_VERSION})
  S3 (moto)      {stack.s3_url}
  kubeconfig     {stack.kubeconfig}
  logs           {stack.state_dir}

Try it:
  curl -s -XPOST {stack.api_url}/v1/download/initiate \\
       -H 'Content-Type: application/json' -d '{{"file_ids": [70000, 70007, 70014]}}'
  curl -s {stack.api_url}/v1/download/status/<jobId>
  kubectl --kubeconfig {stack.kubeconfig} get downloadjobs
  downloadjobs demo

A process that dies comes back by itself; Ctrl-C stops everything. Jobs live in
etcd under {stack.state_dir} and survive a restart; bundles live in moto's memory
and do not.""",
            flush=True,
        )
        restarts = {name: 0 for name in stack.supervisor.processes}
        while not stop.wait(1):
            for name, process in stack.supervisor.processes.items():
                if process.restarts != restarts.get(name, 0):
                    restarts[name] = process.restarts
                    print(f"{name} restarted (see {stack.state_dir}/{name}.log)", flush=True)
    return 0
