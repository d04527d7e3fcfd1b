"""
The chart on a real cluster: install, the golden path through a port-forward, uninstall.

Runs only when asked: ``DOWNLOADJOBS_CLUSTER_TEST=1``, with ``KUBECONFIG`` naming a
cluster (kind) that has the image ``DOWNLOADJOBS_IMAGE`` (default
``downloadjobs:smoke``) loaded. docs/install.md has the exact kind recipe.

The release namespace enforces the restricted Pod Security Standard, so the API
server itself refuses any pod of the chart, or any Job pod of the operator, that does
not meet it. MinIO runs in a namespace of its own.
"""

import contextlib
import io
import os
import socket
import subprocess
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from downloadjobs.settings import S3Settings
from tests.chart.helpers import CHART, find_tool

pytestmark = pytest.mark.skipif(
    os.environ.get("DOWNLOADJOBS_CLUSTER_TEST") != "1",
    reason="real-cluster smoke test: set DOWNLOADJOBS_CLUSTER_TEST=1 (docs/install.md)",
)

IMAGE = os.environ.get("DOWNLOADJOBS_IMAGE", "downloadjobs:smoke")
MINIO_IMAGE = os.environ.get(
    "DOWNLOADJOBS_CLUSTER_MINIO_IMAGE", "quay.io/minio/minio:RELEASE.2025-04-22T22-12-26Z"
)
FILE_IDS = [70000, 70007, 70014]
RELEASE = "dj"


def sh(*args: str, stdin: str | None = None, timeout: float = 600) -> str:
    result = subprocess.run(
        args, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def port_forward(kubectl: str, namespace: str, target: str, remote: int) -> Iterator[int]:
    local = free_port()
    process = subprocess.Popen(
        [kubectl, "port-forward", "-n", namespace, target, f"{local}:{remote}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", local), 1):
                break
            time.sleep(0.3)
        yield local
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    assert os.environ.get("KUBECONFIG"), "KUBECONFIG must name the test cluster"
    return {"kubectl": find_tool("kubectl"), "helm": find_tool("helm")}


@pytest.fixture(scope="module")
def namespaces(tools: dict[str, str]) -> Iterator[tuple[str, str]]:
    kubectl = tools["kubectl"]
    app = f"dj-smoke-{uuid.uuid4().hex[:6]}"
    s3 = f"{app}-s3"
    sh(kubectl, "create", "namespace", app)
    sh(kubectl, "create", "namespace", s3)
    sh(kubectl, "label", "namespace", app, "pod-security.kubernetes.io/enforce=restricted")
    try:
        yield app, s3
    finally:
        subprocess.run([tools["helm"], "uninstall", RELEASE, "-n", app, "--wait"], check=False)
        for namespace in (app, s3):
            subprocess.run([kubectl, "delete", "namespace", namespace, "--wait=false"], check=False)


@pytest.fixture(scope="module")
def minio(tools: dict[str, str], namespaces: tuple[str, str]) -> Iterator[int]:
    """MinIO in the cluster, seeded with the sample files; yields its forwarded local port."""
    from downloadjobs_embedded.s3server import seed

    kubectl = tools["kubectl"]
    _, s3 = namespaces
    manifest = (Path(__file__).parent / "minio.yaml").read_text()
    manifest = manifest.replace("MINIO_IMAGE", MINIO_IMAGE)
    sh(kubectl, "apply", "-n", s3, "-f", "-", stdin=manifest)
    sh(kubectl, "rollout", "status", "-n", s3, "deploy/minio", "--timeout=300s")
    with port_forward(kubectl, s3, "svc/minio", 9000) as port:
        seed(S3Settings(endpoint_url=f"http://127.0.0.1:{port}", path_style=True))
        yield port


@pytest.fixture(scope="module")
def api(tools: dict[str, str], namespaces: tuple[str, str], minio: int) -> Iterator[str]:
    """The chart installed; yields the API's forwarded base URL."""
    kubectl, helm = tools["kubectl"], tools["helm"]
    app, s3 = namespaces
    sh(
        kubectl, "create", "secret", "generic", "dj-s3", "-n", app,
        "--from-literal=AWS_ACCESS_KEY_ID=embedded",
        "--from-literal=AWS_SECRET_ACCESS_KEY=embedded-secret",
    )  # fmt: skip
    repository, tag = IMAGE.rsplit(":", 1)
    sh(
        helm, "install", RELEASE, str(CHART), "-n", app, "--wait", "--timeout", "5m",
        "--set", f"image.repository={repository}",
        "--set", f"image.tag={tag}",
        "--set", "api.replicas=1",
        "--set", f"s3.endpointUrl=http://minio.{s3}.svc:9000",
        # Presigned URLs are signed for the address the test downloads from.
        "--set", f"s3.publicEndpointUrl=http://127.0.0.1:{minio}",
        "--set", "s3.pathStyle=true",
        "--set", "s3.existingSecret=dj-s3",
    )  # fmt: skip
    with port_forward(kubectl, app, f"svc/{RELEASE}-downloadjobs-api", 80) as port:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while httpx.get(f"{base}/health", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the API did not become healthy"
            time.sleep(1)
        yield base


def test_golden_path_on_a_real_cluster(
    api: str, tools: dict[str, str], namespaces: tuple[str, str]
) -> None:
    from downloadjobs_embedded.s3server import sample_content

    response = httpx.post(f"{api}/v1/download/initiate", json={"file_ids": FILE_IDS}, timeout=30)
    assert response.status_code == 202, response.text
    job_id = response.json()["jobId"]

    deadline = time.monotonic() + 300
    while True:
        body = httpx.get(f"{api}/v1/download/status/{job_id}", timeout=30).json()
        if body["status"] in ("completed", "failed", "cancelled"):
            break
        assert time.monotonic() < deadline, f"job still {body['status']}: {body}"
        time.sleep(3)
    assert body["status"] == "completed", body

    bundle = httpx.get(body["result"]["downloadUrl"], timeout=60)
    assert bundle.status_code == 200, bundle.text
    with zipfile.ZipFile(io.BytesIO(bundle.content)) as archive:
        assert archive.namelist() == [f"{i}.zip" for i in FILE_IDS]
        for file_id in FILE_IDS:
            assert archive.read(f"{file_id}.zip") == sample_content(file_id)

    app, _ = namespaces
    listing = sh(tools["kubectl"], "get", "downloadjobs", "-n", app, job_id)
    assert "Completed" in listing, listing
