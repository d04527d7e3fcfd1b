"""
The chart as a user installs it: ``helm install`` into a namespace that enforces the
``restricted`` Pod Security Standard, then the product through the API pod.

By default it runs on the embedded cluster (upstream kube-apiserver and
kube-controller-manager, our node agent, moto): the operator and the API run as the
chart's own Deployments, their pods started by the node agent with their own
ServiceAccount tokens, and the worker pods with the worker's. RBAC and Pod Security
are the API server's decisions, not a reading of the YAML.

The same tests run on any real cluster (kind, or whatever a kubeconfig names):
``DOWNLOADJOBS_CLUSTER_KUBECONFIG=<path>`` with the image ``DOWNLOADJOBS_IMAGE``
(default ``downloadjobs:smoke``) on its nodes; MinIO then runs in a namespace of its
own and the test reaches the API and MinIO through ``kubectl port-forward``.
docs/install.md has the kind recipe.
"""

import contextlib
import io
import json
import os
import socket
import subprocess
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import pytest
import yaml

from downloadjobs import model, s3
from downloadjobs.settings import S3Settings
from downloadjobs_embedded import s3server
from downloadjobs_embedded.stack import Stack, free_port
from tests.chart.helpers import CHART, find_tool
from tests.e2e.client import TIMEOUT, initiate, poll
from tests.e2e.support import wait_for

RELEASE = "dj"
FULLNAME = f"{RELEASE}-downloadjobs"
SECRET = "dj-s3"
ACCOUNTS = {role: f"{FULLNAME}-{role}" for role in ("api", "operator", "worker")}
REAL_KUBECONFIG = os.environ.get("DOWNLOADJOBS_CLUSTER_KUBECONFIG", "")
IMAGE = os.environ.get("DOWNLOADJOBS_IMAGE", "downloadjobs:smoke")
MINIO_IMAGE = os.environ.get(
    "DOWNLOADJOBS_CLUSTER_MINIO_IMAGE", "quay.io/minio/minio:RELEASE.2025-04-22T22-12-26Z"
)
#: Slow enough (about 0.4 s a file) to catch a worker running, quick enough to wait for.
WORKER_DELAY = {
    "DOWNLOADJOBS_WORKER_DELAY_MIN_MS": "300",
    "DOWNLOADJOBS_WORKER_DELAY_MAX_MS": "500",
}


def sh(*args: str, stdin: str | None = None, check: bool = True, timeout: float = 600) -> str:
    result = subprocess.run(
        args, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check:
        assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr * (not check)


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


class Cluster:
    """Where the chart goes: what differs between the embedded cluster and a real one."""

    kubeconfig: str
    #: How the test itself reaches S3 (to seed it and to add files).
    s3_settings: S3Settings
    kubectl: str
    helm: str

    def values(self) -> dict[str, Any]:
        """The values this cluster needs, beyond the ones every run sets."""
        raise NotImplementedError

    @contextlib.contextmanager
    def api(self, namespace: str) -> Iterator[str]:
        """The base URL of the release's API."""
        raise NotImplementedError
        yield ""

    def run(self, *args: str, check: bool = True) -> str:
        return sh(*args, check=check)


class Embedded(Cluster):
    """The embedded cluster: pods are processes, each at its own 127.0.x.y address."""

    def __init__(self, stack: Stack, kubectl: str, helm: str) -> None:
        self.stack = stack
        self.kubeconfig = str(stack.kubeconfig)
        self.s3_settings = stack.s3_settings
        self.kubectl, self.helm = kubectl, helm
        self.api_port = free_port()

    def values(self) -> dict[str, Any]:
        # The node agent runs every pod in the host's network: each listening port is
        # one of the machine's, so the test picks free ones.
        return {
            "s3": {"endpointUrl": self.stack.s3_url},
            # The node agent mounts no volumes: the API takes its idempotency key from
            # the environment instead of the Secret's file.
            "api": {"port": self.api_port, "idempotencySecretAsEnv": True},
            "operator": {"healthPort": free_port(), "metrics": {"port": free_port()}},
        }

    @contextlib.contextmanager
    def api(self, namespace: str) -> Iterator[str]:
        pods = self.stack.objects("", "v1", "pods", namespace)
        ips = [
            p["status"]["podIP"]
            for p in pods
            if p["metadata"]["labels"].get("app.kubernetes.io/component") == "api"
            and p["status"].get("phase") == "Running"
            and p["status"].get("podIP")
        ]
        assert ips, "no running API pod"
        yield f"http://{ips[0]}:{self.api_port}"


class Real(Cluster):
    """A real cluster named by a kubeconfig; MinIO in a namespace of its own."""

    def __init__(self, kubeconfig: str, kubectl: str, helm: str) -> None:
        self.kubeconfig = kubeconfig
        self.kubectl, self.helm = kubectl, helm
        self.s3_namespace = f"dj-s3-{uuid.uuid4().hex[:6]}"
        self._forward = contextlib.ExitStack()

    def start(self) -> None:
        os.environ["KUBECONFIG"] = self.kubeconfig
        sh(self.kubectl, "create", "namespace", self.s3_namespace)
        manifest = (Path(__file__).parent / "minio.yaml").read_text()
        manifest = manifest.replace("MINIO_IMAGE", MINIO_IMAGE)
        sh(self.kubectl, "apply", "-n", self.s3_namespace, "-f", "-", stdin=manifest)
        sh(self.kubectl, "rollout", "status", "-n", self.s3_namespace, "deploy/minio",
           "--timeout=300s")  # fmt: skip
        port = self._forward.enter_context(
            port_forward(self.kubectl, self.s3_namespace, "svc/minio", 9000)
        )
        self.s3_settings = S3Settings(endpoint_url=f"http://127.0.0.1:{port}", path_style=True)
        s3server.seed(self.s3_settings)

    def stop(self) -> None:
        self._forward.close()
        sh(self.kubectl, "delete", "namespace", self.s3_namespace, "--wait=false", check=False)

    def values(self) -> dict[str, Any]:
        repository, tag = IMAGE.rsplit(":", 1)
        return {
            "image": {"repository": repository, "tag": tag},
            "s3": {
                "endpointUrl": f"http://minio.{self.s3_namespace}.svc:9000",
                # Presigned URLs are signed for the address the test downloads from.
                "publicEndpointUrl": self.s3_settings.endpoint_url,
            },
        }

    @contextlib.contextmanager
    def api(self, namespace: str) -> Iterator[str]:
        with port_forward(self.kubectl, namespace, f"svc/{FULLNAME}-api", 80) as port:
            yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    kubectl, helm = find_tool("kubectl"), find_tool("helm")
    if REAL_KUBECONFIG:
        real = Real(REAL_KUBECONFIG, kubectl, helm)
        real.start()
        try:
            yield real
        finally:
            real.stop()
        return
    state = Path(tmp_path_factory.mktemp("helm"))
    with Stack(state, backoff_base=0.5, workloads=False) as stack:
        s3server.seed(stack.s3_settings)
        os.environ["KUBECONFIG"] = str(stack.kubeconfig)
        try:
            yield Embedded(stack, kubectl, helm)
        finally:
            os.environ.pop("KUBECONFIG", None)


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture(scope="module")
def values_file(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The values of the install: this cluster's, plus a test's quick settings."""
    values = merge(
        {
            "api": {
                "replicas": 1,
                "pollRate": "100000/minute",
                "initiateRate": "10000/minute",
            },
            "s3": {"pathStyle": True, "existingSecret": SECRET},
            # One job at a time: the upgrade test raises it and sees it take effect.
            "operator": {"maxRunning": 1, "reconcileIntervalSeconds": 2},
            # Finished Jobs go soon, so that the uninstall test sees none left.
            "worker": {"extraEnv": WORKER_DELAY, "ttlSecondsAfterFinished": 15},
        },
        cluster.values(),
    )
    path = Path(tmp_path_factory.mktemp("values")) / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture(scope="module")
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"dj-helm-{uuid.uuid4().hex[:6]}"
    cluster.run(cluster.kubectl, "create", "namespace", name)
    cluster.run(
        cluster.kubectl, "label", "namespace", name,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )  # fmt: skip
    credentials = [f"--from-literal={k}={v}" for k, v in s3server.CREDENTIALS.items()]
    cluster.run(cluster.kubectl, "create", "secret", "generic", SECRET, "-n", name, *credentials)
    try:
        yield name
    finally:
        cluster.run(cluster.helm, "uninstall", RELEASE, "-n", name, "--wait", check=False)
        cluster.run(cluster.kubectl, "delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def release(cluster: Cluster, namespace: str, values_file: Path) -> str:
    """The chart, installed as the install guide says (docs/install.md)."""
    cluster.run(
        cluster.helm, "install", RELEASE, str(CHART), "-n", namespace,
        "-f", str(values_file), "--wait", "--timeout", "5m",
    )  # fmt: skip
    with cluster.api(namespace) as api:
        wait_for(lambda: healthy(api), timeout=60, what="the API to answer /health")
    return namespace


def healthy(api: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"{api}/health", timeout=5).status_code == 200
    return False


def objects(cluster: Cluster, namespace: str, kind: str) -> list[dict[str, Any]]:
    out = cluster.run(cluster.kubectl, "get", kind, "-n", namespace, "-o", "json")
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def ours(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        i
        for i in items
        if (i["metadata"].get("labels") or {}).get("app.kubernetes.io/instance") == RELEASE
        or (i["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by") == "downloadjobs"
    ]


# -- install ---------------------------------------------------------------------------------


def test_every_pod_of_the_chart_runs_under_its_own_account(cluster: Cluster, release: str) -> None:
    labels = json.loads(cluster.run(cluster.kubectl, "get", "namespace", release, "-o", "json"))
    assert labels["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    pods = objects(cluster, release, "pods")
    by_component = {
        p["metadata"]["labels"]["app.kubernetes.io/component"]: p
        for p in pods
        if p["status"].get("phase") == "Running"
    }
    assert set(by_component) == {"api", "operator"}, [p["metadata"]["name"] for p in pods]
    for component, pod in by_component.items():
        assert pod["spec"]["serviceAccountName"] == ACCOUNTS[component]


# -- the product, through the API pod ----------------------------------------------------------


@pytest.fixture(scope="module")
def completed(cluster: Cluster, release: str) -> str:
    """A job taken down the golden path; its id."""
    file_ids = [70000, 70007, 70014]
    with cluster.api(release) as api:
        job_id = initiate(api, file_ids)
        final, progress = poll(api, job_id, timeout=180)
        assert final["status"] == "completed", final
        assert progress[-1] == 100
        bundle = httpx.get(final["result"]["downloadUrl"], timeout=60)
    assert bundle.status_code == 200, bundle.text
    with zipfile.ZipFile(io.BytesIO(bundle.content)) as archive:
        assert archive.namelist() == [f"{i}.zip" for i in file_ids]
        for file_id in file_ids:
            assert archive.read(f"{file_id}.zip") == s3server.sample_content(file_id)
    return job_id


def test_golden_path_runs_the_worker_under_its_account(
    cluster: Cluster, release: str, completed: str
) -> None:
    def workers() -> list[dict[str, Any]]:
        return [
            p
            for p in objects(cluster, release, "pods")
            if p["metadata"]["labels"].get(model.LABEL_JOB_NAME) == completed
        ]

    # The Job keeps its pod until ttlSecondsAfterFinished (15 s here).
    pods = wait_for(
        lambda: (lambda w: w and {p["status"]["phase"] for p in w} == {"Succeeded"} and w)(
            workers()
        ),
        10,
        "the worker pod to succeed",
    )
    assert {p["spec"]["serviceAccountName"] for p in pods} == {ACCOUNTS["worker"]}


def test_kubectl_shows_the_downloadjobs(cluster: Cluster, release: str, completed: str) -> None:
    listing = cluster.run(cluster.kubectl, "get", "downloadjobs", "-n", release)
    header, *rows = listing.splitlines()
    assert header.split()[:4] == ["NAME", "STATUS", "PROGRESS", "FILES"], listing
    (row,) = [r for r in rows if r.startswith(completed)]
    assert row.split()[1:4] == ["Completed", "100", "3"], listing
    described = cluster.run(cluster.kubectl, "describe", "downloadjob", completed, "-n", release)
    for expected in ("Phase:", "File Ids:", "70000", "Result:", "downloads-bundles", "JobCreated"):
        assert expected in described, described


def test_a_running_job_is_cancelled(cluster: Cluster, release: str) -> None:
    with cluster.api(release) as api:
        job_id = initiate(api, list(range(70020, 70060)))
        wait_for(lambda: status(api, job_id)["status"] == "processing", 60, "processing")
        response = httpx.delete(f"{api}/v1/download/jobs/{job_id}", timeout=TIMEOUT)
        assert response.status_code == 202, response.text
        final, _ = poll(api, job_id, timeout=60)
    assert final["status"] == "cancelled", final

    def no_worker_left() -> bool:
        return not [
            p
            for p in objects(cluster, release, "pods")
            if p["metadata"]["labels"].get(model.LABEL_JOB_NAME) == job_id
            and p["status"].get("phase") in ("Pending", "Running")
        ]

    wait_for(no_worker_left, 60, "the cancelled job's worker to stop")


def replay(api: str, job_id: str) -> None:
    """Retry a failed job, until the operator has put it back in the queue."""
    response = httpx.post(f"{api}/v1/download/jobs/{job_id}/retry", timeout=TIMEOUT)
    assert response.status_code == 202, response.text
    # The answer is the job as it is: failed, with the request recorded for the operator.
    wait_for(lambda: status(api, job_id)["status"] != "failed", 60, "the operator to replay")


def status(api: str, job_id: str) -> dict[str, Any]:
    response = httpx.get(f"{api}/v1/download/status/{job_id}", timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_failed_job_is_replayed_once_its_cause_is_fixed(cluster: Cluster, release: str) -> None:
    missing = 99_990_001  # in range, not in the sample catalogue
    with cluster.api(release) as api:
        job_id = initiate(api, [missing])
        failed, _ = poll(api, job_id, timeout=120)
        assert failed["status"] == "failed", failed
        assert failed["error"]["reason"] == "AllFilesMissing", failed
        listing = cluster.run(cluster.kubectl, "get", "downloadjobs", "-n", release, job_id)
        assert "Failed" in listing, listing
        client = s3.client(cluster.s3_settings, credentials=s3server.BOTO_CREDENTIALS)
        client.put_object(
            Bucket=cluster.s3_settings.source_bucket,
            Key=cluster.s3_settings.source_key(missing),
            Body=b"found at last",
        )
        replay(api, job_id)
        final, _ = poll(api, job_id, timeout=120)
    assert final["status"] == "completed", final
    out = cluster.run(cluster.kubectl, "get", "downloadjob", job_id, "-n", release, "-o", "json")
    assert json.loads(out)["status"]["replays"] == 1


# -- RBAC, as the API server decides it --------------------------------------------------------

#: What each account may do in the release namespace, beyond what every authenticated
#: user may (discovery, self reviews): (resource, verbs), as `kubectl auth can-i --list`
#: prints them. Cluster-scoped reads of the operator (kopf's scanning) are included.
INTENDED: dict[str, set[tuple[str, frozenset[str]]]] = {
    "api": {
        ("downloadjobs.downloadjobs.dev", frozenset({"create", "get", "list", "watch", "patch"}))
    },
    "operator": {
        ("downloadjobs.downloadjobs.dev", frozenset({"get", "list", "watch", "patch", "delete"})),
        ("downloadjobs.downloadjobs.dev/status", frozenset({"patch"})),
        ("jobs.batch", frozenset({"get", "list", "watch", "create", "patch", "delete"})),
        ("pods", frozenset({"list", "delete"})),
        ("events", frozenset({"create", "list"})),
        ("customresourcedefinitions.apiextensions.k8s.io", frozenset({"get", "list", "watch"})),
        ("namespaces", frozenset({"list", "watch"})),
    },
    "worker": {
        ("downloadjobs.downloadjobs.dev", frozenset({"get"})),
        ("downloadjobs.downloadjobs.dev/status", frozenset({"patch"})),
    },
}


def can_i_list(cluster: Cluster, namespace: str, account: str) -> set[tuple[str, frozenset[str]]]:
    """The resource rules `kubectl auth can-i --list` reports for a service account."""
    out = cluster.run(
        cluster.kubectl, "auth", "can-i", "--list", "-n", namespace,
        f"--as=system:serviceaccount:{namespace}:{account}",
    )  # fmt: skip
    rules = set()
    for line in out.splitlines()[1:]:
        # Resources  Non-Resource URLs  Resource Names  Verbs; a URL's row has no resource.
        resource = line.partition("[")[0].strip()
        verbs = line[line.rindex("[") + 1 : line.rindex("]")]
        if resource:
            rules.add((resource, frozenset(verbs.split())))
    return rules


def test_each_account_has_exactly_its_intended_rights(cluster: Cluster, release: str) -> None:
    # What an account with no binding at all may do: every authenticated user's rights.
    baseline = can_i_list(cluster, release, "nobody")
    for role, account in ACCOUNTS.items():
        granted = can_i_list(cluster, release, account) - baseline
        assert granted == INTENDED[role], (role, sorted(granted))


def client_as(
    cluster: Cluster, namespace: str, account: str, pod: dict[str, Any] | None = None
) -> kubernetes.client.ApiClient:
    """A client with a token of ``account``: bound to ``pod`` as a kubelet's is, or unbound."""
    bound = []
    if pod is not None:
        meta = pod["metadata"]
        bound = [
            "--bound-object-kind=Pod",
            f"--bound-object-name={meta['name']}",
            f"--bound-object-uid={meta['uid']}",
        ]
    token = cluster.run(cluster.kubectl, "create", "token", account, "-n", namespace, *bound)
    admin = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(cluster.kubeconfig, client_configuration=admin)
    config = kubernetes.client.Configuration()
    config.host = admin.host
    config.ssl_ca_cert = admin.ssl_ca_cert
    config.verify_ssl = admin.verify_ssl
    config.api_key = {"authorization": f"Bearer {token.strip()}"}
    return kubernetes.client.ApiClient(config)


def refused(call: Any) -> int:
    try:
        call()
    except kubernetes.client.ApiException as exc:
        return int(exc.status)
    return 200


def test_the_worker_token_patches_its_own_status_and_nothing_else(
    cluster: Cluster, release: str, completed: str
) -> None:
    with cluster.api(release) as api:
        job_id = initiate(api, list(range(70060, 70090)))

        def running_worker() -> dict[str, Any] | None:
            for pod in objects(cluster, release, "pods"):
                labels = pod["metadata"]["labels"]
                if (
                    labels.get(model.LABEL_JOB_NAME) == job_id
                    and pod["status"].get("phase") == "Running"
                ):
                    return pod
            return None

        pod = wait_for(running_worker, 60, "the worker pod to run")
        # The token a kubelet gives that pod: the worker's account, bound to the pod.
        api_client = client_as(cluster, release, ACCOUNTS["worker"], pod)
        batch = kubernetes.client.BatchV1Api(api_client)
        core = kubernetes.client.CoreV1Api(api_client)
        custom = kubernetes.client.CustomObjectsApi(api_client)
        job = {
            "metadata": {"name": "sneaky"},
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "x", "command": ["true"]}],
                    }
                }
            },
        }
        assert refused(lambda: batch.create_namespaced_job(release, job)) == 403
        assert refused(lambda: core.read_namespaced_secret(SECRET, release)) == 403
        mine = (model.GROUP, model.VERSION, release, model.PLURAL, job_id)
        spec_patch = {"spec": {"fileIds": [70001]}}
        assert refused(lambda: custom.patch_namespaced_custom_object(*mine, spec_patch)) == 403
        beat = {"status": {"heartbeatAt": model.utcnow().isoformat()}}
        assert refused(lambda: custom.patch_namespaced_custom_object_status(*mine, beat)) == 200
        # RBAC allows every DownloadJob's status; the chart's status policy narrows it to
        # the pod's own (worker.statusPolicy).
        other = (model.GROUP, model.VERSION, release, model.PLURAL, completed)
        assert refused(lambda: custom.patch_namespaced_custom_object_status(*other, beat)) == 403
        response = httpx.delete(f"{api}/v1/download/jobs/{job_id}", timeout=TIMEOUT)
        assert response.status_code == 202, response.text


def test_the_api_token_reaches_no_pods_jobs_or_secrets(cluster: Cluster, release: str) -> None:
    api_client = client_as(cluster, release, ACCOUNTS["api"])
    core = kubernetes.client.CoreV1Api(api_client)
    batch = kubernetes.client.BatchV1Api(api_client)
    assert refused(lambda: core.list_namespaced_pod(release)) == 403
    assert refused(lambda: batch.list_namespaced_job(release)) == 403
    assert refused(lambda: core.list_namespaced_secret(release)) == 403
    assert refused(lambda: core.read_namespaced_secret(SECRET, release)) == 403


# -- Pod Security, as the API server decides it ------------------------------------------------


def test_a_worker_breaking_the_restricted_level_is_refused_and_the_job_fails_saying_why(
    cluster: Cluster, release: str, values_file: Path
) -> None:
    upgrade = [cluster.helm, "upgrade", RELEASE, str(CHART), "-n", release, "-f", str(values_file)]
    weaken = ["--set", "worker.containerSecurityContext.runAsNonRoot=false"]
    # The chart's schema refuses it first ...
    out = cluster.run(*upgrade, *weaken, check=False)
    assert "runAsNonRoot" in out and "schema" in out.lower(), out
    # ... and were it bypassed, the API server refuses the worker's pod.
    cluster.run(*upgrade, *weaken, "--skip-schema-validation", "--wait", "--timeout", "5m")
    try:
        with cluster.api(release) as api:
            job_id = initiate(api, [70001])
            failed, _ = poll(api, job_id, timeout=120)
        assert failed["status"] == "failed", failed
        assert failed["error"]["reason"] == "PodRefused", failed
        message = failed["error"]["message"]
        assert 'violates PodSecurity "restricted:latest"' in message, message
        assert "runAsNonRoot" in message, message
        workers = [
            p
            for p in objects(cluster, release, "pods")
            if p["metadata"]["labels"].get(model.LABEL_JOB_NAME) == job_id
        ]
        assert workers == [], "a pod breaking the restricted level was admitted"
        described = cluster.run(cluster.kubectl, "describe", "downloadjob", job_id, "-n", release)
        assert "PodRefused" in described, described
    finally:
        cluster.run(*upgrade, "--wait", "--timeout", "5m")
    # Fixed: the dead letter replays and completes.
    with cluster.api(release) as api:
        replay(api, job_id)
        final, _ = poll(api, job_id, timeout=120)
    assert final["status"] == "completed", final


# -- upgrade and uninstall ---------------------------------------------------------------------


def test_an_upgrade_raises_the_running_cap_without_losing_a_job(
    cluster: Cluster, release: str, values_file: Path
) -> None:
    with cluster.api(release) as api:
        jobs = [initiate(api, list(range(70000 + 10 * i, 70010 + 10 * i))) for i in range(4)]
        # The cap is 1: one job runs, the others wait in the queue.
        wait_for(lambda: phases(api, jobs).count("processing") == 1, 60, "one job running")
        assert phases(api, jobs).count("processing") == 1
        cluster.run(
            cluster.helm, "upgrade", RELEASE, str(CHART), "-n", release,
            "-f", str(values_file), "--set", "operator.maxRunning=3",
            "--wait", "--timeout", "5m",
        )  # fmt: skip
        seen = wait_for(
            lambda: (lambda p: p.count("processing") >= 2 and p)(phases(api, jobs)),
            90,
            "several jobs running at once under the new cap",
        )
        assert seen.count("processing") <= 3, seen
        finals = [poll(api, job_id, timeout=180)[0] for job_id in jobs]
    assert [f["status"] for f in finals] == ["completed"] * len(jobs), finals
    env = operator_env(cluster, release)
    assert env["DOWNLOADJOBS_OPERATOR_MAX_RUNNING"] == "3"


def phases(api: str, jobs: list[str]) -> list[str]:
    return [status(api, job_id)["status"] for job_id in jobs]


def operator_env(cluster: Cluster, namespace: str) -> dict[str, str]:
    (deployment,) = [
        d
        for d in objects(cluster, namespace, "deployments")
        if d["metadata"]["name"] == f"{FULLNAME}-operator"
    ]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_uninstall_leaves_no_job_pod_role_binding_or_policy(cluster: Cluster, release: str) -> None:
    cluster.run(cluster.helm, "uninstall", RELEASE, "-n", release, "--wait", "--timeout", "5m")

    def leftovers() -> dict[str, list[str]]:
        found = {}
        for kind in ("jobs", "pods", "roles", "rolebindings", "deployments", "services"):
            names = [i["metadata"]["name"] for i in objects(cluster, release, kind)]
            if names:
                found[kind] = names
        cluster_kinds = (
            "clusterroles",
            "clusterrolebindings",
            "validatingadmissionpolicies",  # the worker status policy
            "validatingadmissionpolicybindings",
        )
        for kind in cluster_kinds:
            out = cluster.run(cluster.kubectl, "get", kind, "-o", "json")
            names = [
                i["metadata"]["name"]
                for i in ours(json.loads(out)["items"])
                if release in i["metadata"]["name"]
            ]
            if names:
                found[kind] = names
        return found

    wait_for(lambda: not leftovers(), 120, "everything of the release to go")
    # Helm keeps CRDs (docs/install.md): the DownloadJobs stay, listable.
    listing = cluster.run(cluster.kubectl, "get", "downloadjobs", "-n", release)
    assert "Completed" in listing, listing
