"""
The ``downloadjobs`` command: one entry point for every process of the system.

``api``, ``operator`` and ``worker`` are what containers run; ``crd`` prints
the CustomResourceDefinition; ``dev`` and ``demo`` run the whole system on the
embedded cluster (they need the ``dev`` extra). Imports happen inside each
command, so a worker pod never loads FastAPI and a server never loads moto.
"""

import argparse
import logging
import sys
from pathlib import Path


def _api(args: argparse.Namespace) -> int:
    import uvicorn

    from downloadjobs_api.settings import ApiSettings

    settings = ApiSettings()
    uvicorn.run(
        "downloadjobs_api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        # The app reads X-Forwarded-* itself, from DOWNLOADJOBS_API_FORWARDED_ALLOW_IPS only.
        proxy_headers=False,
        limit_concurrency=settings.max_connections,
        log_level=args.log_level,
    )
    return 0


def _operator(args: argparse.Namespace) -> int:
    import random

    import kopf

    import downloadjobs_operator.handlers  # noqa: F401  (registers the handlers)
    from downloadjobs import kube
    from downloadjobs_operator.peering import ensure_peering

    if not args.standalone:
        kube.load_config()
        ensure_peering(args.peering, None if args.all_namespaces else args.namespace)
    # Replicas of one Deployment share their arguments; kopf freezes every replica
    # when two share a priority, so each one draws its own unless told.
    priority = args.priority if args.priority is not None else random.randint(1, 2**31 - 1)
    kopf.configure(verbose=args.verbose)
    kopf.run(
        clusterwide=args.all_namespaces,
        namespaces=[] if args.all_namespaces else [args.namespace],
        standalone=args.standalone,
        priority=None if args.standalone else priority,
        peering_name=None if args.standalone else args.peering,
        liveness_endpoint=args.liveness,
    )
    return 0


def _worker(_: argparse.Namespace) -> int:
    from downloadjobs_worker.main import run

    return run()


def _crd(args: argparse.Namespace) -> int:
    from downloadjobs.crd import render_crd_yaml

    text = render_crd_yaml()
    if args.write:
        for path in args.write:
            Path(path).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _dev(args: argparse.Namespace) -> int:
    from downloadjobs_cli.dev import run_dev

    return run_dev(args)


def _demo(args: argparse.Namespace) -> int:
    from downloadjobs_cli.demo import run_demo

    return run_demo(args)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="downloadjobs", description=__doc__.split("\n\n")[0])
    sub = top.add_subparsers(dest="command", required=True)

    api = sub.add_parser("api", help="serve the HTTP API")
    api.add_argument("--host", default="0.0.0.0")
    api.add_argument("--port", type=int, default=8080)
    api.add_argument("--log-level", default="info")
    api.set_defaults(fn=_api)

    op = sub.add_parser("operator", help="run the kopf operator")
    op.add_argument("--namespace", default="default", help="namespace to serve")
    op.add_argument("--all-namespaces", action="store_true", help="serve the whole cluster")
    op.add_argument("--standalone", action="store_true", help="no peering with other replicas")
    op.add_argument(
        "--peering",
        default="downloadjobs",
        help="name of the KopfPeering object the replicas share (without --standalone)",
    )
    op.add_argument(
        "--priority",
        type=int,
        default=None,
        help="peering priority; the highest live replica works (default: a random one)",
    )
    op.add_argument("--liveness", default=None, help="e.g. http://0.0.0.0:8081/healthz")
    op.add_argument("--verbose", action="store_true")
    op.set_defaults(fn=_operator)

    worker = sub.add_parser("worker", help="build one bundle (what a Job's pod runs)")
    worker.set_defaults(fn=_worker)

    crd = sub.add_parser("crd", help="print the DownloadJob CRD generated from the model")
    crd.add_argument("--write", nargs="*", help="write it to these files instead")
    crd.set_defaults(fn=_crd)

    dev = sub.add_parser("dev", help="run everything locally on the embedded cluster")
    dev.add_argument("--state-dir", default=".dev", help="logs, kubeconfig, pod logs, etcd's data")
    dev.add_argument("--api-port", type=int, default=8080)
    dev.add_argument("--kube-port", type=int, default=16443)
    dev.add_argument("--s3-port", type=int, default=19000)
    dev.add_argument("--etcd-port", type=int, default=12379, help="and the next for its peer URL")
    dev.add_argument(
        "--delay-ms",
        default="1000-3000",
        help="simulated per-file slowness of the worker, MIN-MAX ms (0-0 for none)",
    )
    dev.set_defaults(fn=_dev)

    demo = sub.add_parser("demo", help="run the golden path once and verify the bundle")
    demo.add_argument("--state-dir", default=".dev", help="where a running `dev` stack is")
    demo.add_argument("--file-ids", default="70000,70007,70014")
    demo.add_argument("--timeout", type=float, default=180)
    demo.set_defaults(fn=_demo)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command != "operator":  # kopf configures its own logging
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
    code: int = args.fn(args)
    return code
