"""
The API's safety on the embedded cluster: one job for concurrent duplicates of an
Idempotency-Key (the API server's AlreadyExists decides), owners isolated by
bearer token, the per-owner cap, rate limits, the traceparent reaching the
worker, and degraded mode while the Kubernetes API is unreachable.
"""

import concurrent.futures
import contextlib
import json
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from downloadjobs import model
from downloadjobs_embedded.stack import Stack, free_port
from tests.e2e.client import TERMINAL, TIMEOUT
from tests.e2e.support import running_stack

TOKENS = {"t-alice": "alice", "t-bob": "bob", "t-carol": "carol", "t-dave": "dave"}
ALICE = {"Authorization": "Bearer t-alice"}
BOB = {"Authorization": "Bearer t-bob"}
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class CuttableProxy(socketserver.ThreadingTCPServer):
    """A TCP proxy to kube-apiserver that a test can cut (the network fails) and mend."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.target = target
        self.cut = threading.Event()
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", port), Pipe)

    def sever(self) -> None:
        self.cut.set()
        with self.lock:
            for sock in list(self.open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class Pipe(socketserver.BaseRequestHandler):
    server: CuttableProxy

    def handle(self) -> None:
        if self.server.cut.is_set():
            return  # closed at once: the client sees the connection fail
        upstream = socket.create_connection(self.server.target)
        with self.server.lock:
            self.server.open |= {self.request, upstream}

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for sock in (src, dst):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)

        back = threading.Thread(target=pump, args=(upstream, self.request), daemon=True)
        back.start()
        pump(self.request, upstream)
        back.join()
        with self.server.lock:
            self.server.open -= {self.request, upstream}
        upstream.close()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {
        "DOWNLOADJOBS_API_AUTH_MODE": "token",
        "DOWNLOADJOBS_API_TOKENS": json.dumps(TOKENS),
        "DOWNLOADJOBS_API_MAX_ACTIVE_JOBS_PER_OWNER": "3",
        "DOWNLOADJOBS_API_POLL_RATE": "300/minute",
        "DOWNLOADJOBS_API_INITIATE_RATE": "100/minute",
    }
    with running_stack(tmp_path_factory, "guarded", delay_ms=(100, 200), operator=env) as stack:
        yield stack


def initiate(stack: Stack, ids: list[int], headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{stack.api_url}/v1/download/initiate",
        json={"file_ids": ids},
        headers=headers,
        timeout=TIMEOUT,
    )


def wait_done(stack: Stack, job_id: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        body: dict[str, Any] = httpx.get(
            f"{stack.api_url}/v1/download/jobs/{job_id}",
            params={"waitSeconds": 10},
            headers=headers,
            timeout=TIMEOUT,
        ).json()
        if body["status"] in TERMINAL:
            return body
    raise AssertionError(f"{job_id} did not finish")


def test_concurrent_duplicates_make_one_job(guarded: Stack) -> None:
    headers = {**ALICE, "Idempotency-Key": "checkout-7"}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: initiate(guarded, [70000], headers), range(8)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * 7 + [202], [a.text for a in answers]
    assert len({a.json()["jobId"] for a in answers}) == 1
    job_id = answers[0].json()["jobId"]
    same = [j for j in guarded.downloadjobs() if j["metadata"]["name"] == job_id]
    assert len(same) == 1
    assert wait_done(guarded, job_id, ALICE)["status"] == "completed"
    other = initiate(guarded, [70001], headers)
    assert other.status_code == 422


def test_owners_are_isolated_and_listed(guarded: Stack) -> None:
    job_id = initiate(guarded, [70002], BOB).json()["jobId"]
    url = f"{guarded.api_url}/v1/download/jobs/{job_id}"
    assert httpx.get(url, headers=BOB, timeout=TIMEOUT).status_code == 200
    assert httpx.get(url, headers=ALICE, timeout=TIMEOUT).status_code == 404
    assert httpx.delete(url, headers=ALICE, timeout=TIMEOUT).status_code == 404
    assert httpx.get(url, timeout=TIMEOUT).status_code == 401
    mine = httpx.get(f"{guarded.api_url}/v1/download/jobs", headers=BOB, timeout=TIMEOUT).json()
    assert [item["jobId"] for item in mine["items"]] == [job_id]
    theirs = httpx.get(f"{guarded.api_url}/v1/download/jobs", headers=ALICE, timeout=TIMEOUT)
    assert job_id not in {item["jobId"] for item in theirs.json()["items"]}
    (resource,) = [j for j in guarded.downloadjobs() if j["metadata"]["name"] == job_id]
    assert resource["spec"]["owner"] == "bob"


def test_active_jobs_are_capped_per_owner(guarded: Stack) -> None:
    carol = {"Authorization": "Bearer t-carol"}
    slow = list(range(70000, 70040))  # about 6 s of simulated work each
    accepted = [initiate(guarded, slow, carol) for _ in range(3)]
    assert [a.status_code for a in accepted] == [202] * 3
    refused = initiate(guarded, [70003], carol)
    assert refused.status_code == 429 and refused.json()["error"] == "TOO_MANY_ACTIVE_JOBS"
    assert initiate(guarded, [70003], ALICE).status_code == 202, "other owners are not capped"
    for answer in accepted:
        location = answer.headers["location"]
        httpx.delete(f"{guarded.api_url}{location}", headers=carol, timeout=TIMEOUT)


def test_polling_is_limited_without_starving_initiation(guarded: Stack) -> None:
    dave = {"Authorization": "Bearer t-dave"}
    job_id = initiate(guarded, [70004], dave).json()["jobId"]
    url = f"{guarded.api_url}/v1/download/jobs/{job_id}"
    codes = []
    with httpx.Client(timeout=TIMEOUT) as client:
        for _ in range(700):  # a burst may straddle a window boundary: two windows' worth
            response = client.get(url, headers=dave)
            codes.append(response.status_code)
            assert "ratelimit-remaining" in response.headers
            if response.status_code == 429:
                assert int(response.headers["retry-after"]) >= 1
                break
    assert codes[-1] == 429 and set(codes[:-1]) == {200}
    assert initiate(guarded, [70005], dave).status_code == 202


def test_the_trace_reaches_the_worker(guarded: Stack) -> None:
    job_id = initiate(guarded, [70006], {**ALICE, "traceparent": TRACEPARENT}).json()["jobId"]
    wait_done(guarded, job_id, ALICE)
    (resource,) = [j for j in guarded.downloadjobs() if j["metadata"]["name"] == job_id]
    assert resource["metadata"]["annotations"][model.ANNOTATION_TRACEPARENT] == TRACEPARENT
    envs = [
        container.get("env", [])
        for job in guarded.jobs()
        if job["metadata"]["labels"].get(model.LABEL_JOB_NAME) == job_id
        for container in job["spec"]["template"]["spec"]["containers"]
    ]
    assert {"name": "TRACEPARENT", "value": TRACEPARENT} in envs[0]


def test_degraded_mode_while_kubernetes_is_unreachable(guarded: Stack) -> None:
    """The API alone goes through a proxy that the test cuts, then mends."""
    job_id = initiate(guarded, [70007], ALICE).json()["jobId"]
    wait_done(guarded, job_id, ALICE)
    proxy = CuttableProxy(free_port(), ("127.0.0.1", guarded.kube_port))
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    kubeconfig = guarded.state_dir / "kubeconfig-via-proxy"
    guarded.write_kubeconfig(kubeconfig, f"https://127.0.0.1:{proxy.server_address[1]}")
    guarded.extra_env["KUBECONFIG"] = str(kubeconfig)
    url = f"{guarded.api_url}/v1/download/jobs/{job_id}"
    try:
        guarded.restart("api")
        guarded.wait_http(f"{guarded.api_url}/health", "api")
        proxy.sever()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            stale = httpx.get(url, headers=ALICE, timeout=TIMEOUT)
            if stale.headers.get("x-data-stale"):
                break
            time.sleep(0.2)
        assert stale.status_code == 200 and stale.json()["status"] == "completed"
        assert stale.headers["x-data-stale"] == "true"
        assert "110" in stale.headers["warning"]
        refused = initiate(guarded, [70008], ALICE)
        assert refused.status_code == 503, refused.text
        assert int(refused.headers["retry-after"]) >= 1
        health = httpx.get(f"{guarded.api_url}/health", timeout=TIMEOUT)
        assert health.status_code == 503 and health.json()["checks"]["kubernetes"] == "error"
        assert httpx.get(f"{guarded.api_url}/ready", timeout=TIMEOUT).status_code == 200
        proxy.cut.clear()  # the network is back: the watch reconnects by itself
        guarded.wait_http(f"{guarded.api_url}/health", "api")
        fresh = httpx.get(url, headers=ALICE, timeout=TIMEOUT)
        assert "x-data-stale" not in fresh.headers
        assert initiate(guarded, [70008], ALICE).status_code == 202
    finally:
        proxy.shutdown()
        proxy.server_close()
        del guarded.extra_env["KUBECONFIG"]
