"""
Polling on the embedded cluster: answered from the watch cache (zero requests to
the API server per poll, counted at the emulator), ETag/304, Retry-After,
etaSeconds, the bounded long-poll and the stable download link.
"""

import io
import time
import zipfile
from typing import Any

import httpx

from downloadjobs_api.jobs import USER_AGENT
from downloadjobs_embedded.stack import Stack
from tests.e2e.client import TERMINAL, TIMEOUT, initiate, poll


def api_requests(stack: Stack) -> int:
    """Requests the API process has made to the Kubernetes API server so far."""
    return stack.requests_by(USER_AGENT)


def job_url(stack: Stack, job_id: str) -> str:
    return f"{stack.api_url}/v1/download/jobs/{job_id}"


def test_polls_cost_the_api_server_nothing(stack: Stack) -> None:
    job_id = initiate(stack.api_url, list(range(70000, 70008)))
    before = api_requests(stack)
    states: list[str] = []
    polls = 0
    etas: list[Any] = []
    retry_afters: list[str] = []
    deadline = time.monotonic() + 120
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        # read-your-writes: the very first poll after initiate already finds the job
        response = httpx.get(f"{stack.api_url}/v1/download/status/{job_id}", timeout=TIMEOUT)
        polls += 1
        assert response.status_code == 200, response.text
        body = response.json()
        states.append(body["status"])
        etas.append(body["etaSeconds"])
        if body["status"] not in TERMINAL:
            retry_afters.append(response.headers["retry-after"])
        else:
            assert "retry-after" not in response.headers, "nothing left to wait for"
            break
        time.sleep(0.1)
    assert body["status"] == "completed", body
    assert api_requests(stack) == before, f"{polls} polls made API-server requests"
    assert polls > 10 and "processing" in states
    assert all(1 <= int(v) <= 30 for v in retry_afters)
    assert any(isinstance(eta, int) for eta in etas), "a processing job estimates its time left"


def test_etag_gets_304_until_the_job_changes(stack: Stack) -> None:
    job_id = initiate(stack.api_url, [70010, 70011])
    final, _ = poll(stack.api_url, job_id)
    first = httpx.get(job_url(stack, job_id), timeout=TIMEOUT)
    tag = first.headers["etag"]
    assert tag.startswith('W/"') and first.json() == {**final, "result": first.json()["result"]}
    again = httpx.get(job_url(stack, job_id), headers={"If-None-Match": tag}, timeout=TIMEOUT)
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == tag
    other = httpx.get(job_url(stack, job_id), headers={"If-None-Match": 'W/"x"'}, timeout=TIMEOUT)
    assert other.status_code == 200


def test_long_poll_returns_when_the_job_changes(stack: Stack) -> None:
    job_id = initiate(stack.api_url, list(range(70020, 70030)))
    seen = httpx.get(job_url(stack, job_id), timeout=TIMEOUT)
    tag = seen.headers["etag"]
    changes = 0
    for _ in range(60):
        waited = httpx.get(
            job_url(stack, job_id),
            params={"waitSeconds": 25},
            headers={"If-None-Match": tag},
            timeout=TIMEOUT,
        )
        assert waited.headers["preference-applied"] == "wait=25"
        if waited.status_code == 200:
            assert waited.headers["etag"] != tag, "a long-poll answers with the new state"
            tag = waited.headers["etag"]
            changes += 1
            if waited.json()["status"] in TERMINAL:
                break
    assert changes >= 2
    # a finished job never changes: the long-poll answers at once, and Prefer works too
    done = httpx.get(job_url(stack, job_id), headers={"Prefer": "wait=20"}, timeout=TIMEOUT)
    assert done.status_code == 200 and done.json()["status"] == "completed"
    assert done.headers["preference-applied"] == "wait=20"


def test_file_link_redirects_to_a_fresh_presigned_url(stack: Stack) -> None:
    job_id = initiate(stack.api_url, list(range(70030, 70036)))
    early = httpx.get(f"{job_url(stack, job_id)}/file", timeout=TIMEOUT)
    if early.status_code != 302:  # a small job may finish before this first request
        assert early.status_code == 409, early.text
        assert early.json()["error"] == "CONFLICT"
    poll(stack.api_url, job_id)
    first = httpx.get(f"{job_url(stack, job_id)}/file", timeout=TIMEOUT)
    assert first.status_code == 302
    url = first.headers["location"]
    assert url.startswith(stack.s3_url) and "X-Amz-Signature=" in url
    bundle = httpx.get(url, timeout=TIMEOUT)
    assert bundle.status_code == 200
    assert len(zipfile.ZipFile(io.BytesIO(bundle.content)).namelist()) == 6
    time.sleep(1.1)  # presigned URLs carry the signing second
    assert httpx.get(f"{job_url(stack, job_id)}/file", timeout=TIMEOUT).headers["location"] != url
