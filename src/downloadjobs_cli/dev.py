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
        worker_delay_ms=parse_range(args.delay_ms),
        extra_env=DEV_ENV,
    )
    with stack:
        print(
            f"""
DownloadJobs is running on the embedded cluster.

  API            {stack.api_url}          (docs: {stack.api_url}/docs; CORS: any origin)
  Kubernetes     {stack.kube_url}
  S3 (moto)      {stack.s3_url}
  kubeconfig     {stack.kubeconfig}
  logs           {stack.state_dir}

Try it:
  curl -s -XPOST {stack.api_url}/v1/download/initiate \\
       -H 'Content-Type: application/json' -d '{{"file_ids": [70000, 70007, 70014]}}'
  curl -s {stack.api_url}/v1/download/status/<jobId>
  kubectl --kubeconfig {stack.kubeconfig} get downloadjobs
  downloadjobs demo

Ctrl-C stops everything.""",
            flush=True,
        )
        while not stop.wait(1):
            for name, process in stack.processes.items():
                if process.poll() is not None:
                    print(
                        f"{name} exited with {process.returncode}; see {stack.state_dir}/{name}.log"
                    )
                    return 1
    return 0
