"""A small polling client for the tests, speaking only HTTP to the API."""

import time
from typing import Any

import httpx

TERMINAL = {"completed", "failed", "cancelled"}


TIMEOUT = httpx.Timeout(30.0)  # 20 worker processes starting at once load 2 cores


def initiate(api: str, file_ids: list[int]) -> str:
    response = httpx.post(
        f"{api}/v1/download/initiate", json={"file_ids": file_ids}, timeout=TIMEOUT
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["jobId"]
    return job_id


def poll(
    api: str, job_id: str, timeout: float = 120, interval: float = 0.2
) -> tuple[dict[str, Any], list[int]]:
    """Poll until the job ends; return the final answer and every progress value seen."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = httpx.get(f"{api}/v1/download/status/{job_id}", timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if not seen or seen[-1] != body["progress"]:
            seen.append(body["progress"])
        if body["status"] in TERMINAL:
            return body, seen
        time.sleep(interval)
    raise AssertionError(f"job {job_id} did not end within {timeout} s")


def status(api: str, job_id: str) -> dict[str, Any]:
    """One poll of the job's status (asserting it exists)."""
    response = httpx.get(f"{api}/v1/download/status/{job_id}", timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def scrape(port: int) -> dict[str, float]:
    """A Prometheus endpoint on localhost, as {"name{labels}": value}."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=TIMEOUT).text
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values
