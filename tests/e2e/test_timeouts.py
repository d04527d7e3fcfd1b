"""
Time limits end to end: a stalled worker (frozen with SIGSTOP, so its process
lives on without a heartbeat) is replaced and the job completes; a job that runs
past ``activeDeadlineSeconds`` fails for good; the operator's counters tell both.
"""

import contextlib
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from downloadjobs import model
from downloadjobs_embedded.stack import Stack, free_port
from tests.e2e.client import initiate, poll, scrape, status
from tests.e2e.support import running_stack, wait_for

STALL_SECONDS = 10
DEADLINE_SECONDS = 45
METRICS_PORT = free_port()


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    operator = {
        "DOWNLOADJOBS_OPERATOR_STALL_SECONDS": str(STALL_SECONDS),
        "DOWNLOADJOBS_OPERATOR_ACTIVE_DEADLINE_SECONDS": str(DEADLINE_SECONDS),
        "DOWNLOADJOBS_OPERATOR_METRICS_PORT": str(METRICS_PORT),
    }
    with running_stack(
        tmp_path_factory, "limited", delay_ms=(400, 600), operator=operator
    ) as stack:
        yield stack


def pod_processes(stack: Stack, job_id: str) -> list[tuple[str, int]]:
    """(pod name, pid) of the live worker processes of one job."""
    return [(pod, pid) for pod, pid in stack.pod_processes() if job_id in pod]


def event_reasons(stack: Stack, job_id: str) -> list[str]:
    events = stack.events()
    return [e["reason"] for e in events if e["involvedObject"]["name"] == job_id]


def test_a_stalled_worker_is_replaced_and_the_job_completes(limited: Stack) -> None:
    before = scrape(METRICS_PORT)
    job_id = initiate(limited.api_url, list(range(70000, 70015)))
    wait_for(
        lambda: status(limited.api_url, job_id)["progress"] > 0, what="the first attempt's progress"
    )
    ((frozen_pod, pid),) = pod_processes(limited, job_id)
    os.killpg(pid, signal.SIGSTOP)  # alive, but silent: no heartbeat, no bytes
    try:
        final = poll(limited.api_url, job_id, timeout=120, interval=1.0)[0]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    assert final["status"] == "completed", final
    assert final["attempts"] == 2, "the frozen pod was replaced once, and only once"
    assert "Stalled" in event_reasons(limited, job_id)
    after = scrape(METRICS_PORT)
    assert after["downloadjobs_stalls_total"] - before["downloadjobs_stalls_total"] == 1
    retries = "downloadjobs_pod_retries_total"
    assert after[retries] - before[retries] == 1
    assert frozen_pod not in [pod for pod, _ in pod_processes(limited, job_id)]


def test_a_job_past_its_deadline_fails_for_good(limited: Stack) -> None:
    # 100 files at 400-600 ms each: about 50 s of work against a 45 s deadline.
    job_id = initiate(limited.api_url, list(range(70000, 70100)))
    final = poll(limited.api_url, job_id, timeout=DEADLINE_SECONDS + 60, interval=1.0)[0]
    assert final["status"] == "failed", final
    assert final["error"]["reason"] == "DeadlineExceeded", final["error"]
    assert final["attempts"] == 1, "a deadline is not retried"
    wait_for(lambda: pod_processes(limited, job_id) == [], timeout=15, what="the pod to stop")
    (body,) = [b for b in limited.downloadjobs() if b["metadata"]["name"] == job_id]
    assert body["metadata"]["labels"][model.LABEL_DEAD_LETTER] == "true"
    assert "Failed" in event_reasons(limited, job_id)


def test_every_job_here_left_a_condition_trail(limited: Stack) -> None:
    """`kubectl describe` material: each transition is a condition with a reason."""
    for body in limited.downloadjobs():
        conditions: list[dict[str, Any]] = body["status"]["conditions"]
        assert all(c["reason"] and c["lastTransitionTime"] for c in conditions), conditions
