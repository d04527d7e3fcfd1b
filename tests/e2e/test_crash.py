"""
Crash safety: a burst of DownloadJobs while the operator is SIGKILLed at random
moments, then every other process of the stack once (kube-apiserver and etcd
included). Every job ends, none gets a second Job, none is orphaned.
"""

import collections
import concurrent.futures
import random
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from downloadjobs import model
from downloadjobs_embedded.stack import Stack
from tests.e2e.client import TIMEOUT, initiate
from tests.e2e.support import running_stack

BURST = 200
KILLS = 3
#: Every other process of the stack, each SIGKILLed once after the burst is created.
OTHERS = ("apiserver", "etcd", "nodeagent", "controller-manager", "api")


@pytest.fixture(scope="module")
def burst_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    operator = {
        "DOWNLOADJOBS_OPERATOR_MAX_RUNNING": "12",
        "DOWNLOADJOBS_OPERATOR_RECONCILE_INTERVAL": "15",
        # Finished Jobs must outlive the test, or the duplicate count misses them.
        "DOWNLOADJOBS_OPERATOR_TTL_SECONDS_AFTER_FINISHED": "3600",
    }
    with running_stack(tmp_path_factory, "burst", operator=operator) as stack:
        yield stack


@pytest.mark.timeout(1200)
def test_burst_with_every_process_of_the_stack_killed(burst_stack: Stack) -> None:
    """
    The operator is SIGKILLed three times while the burst is created; once every job
    exists, each other process of the stack is SIGKILLed once, control plane included.
    The supervisor brings each back, as a static pod or a Deployment would be.
    """
    stack = burst_stack
    rng = random.Random(20261128)
    kills: list[tuple[str, float]] = []
    errors: list[BaseException] = []
    created = threading.Event()
    done = threading.Event()

    def killer() -> None:
        try:
            kill_everything()
        except BaseException as exc:  # surfaces below; the wait loop stops on it
            errors.append(exc)

    def kill_everything() -> None:
        start = time.monotonic()
        moments = sorted(rng.uniform(2, 30) for _ in range(KILLS))
        for moment in moments:
            if done.wait(max(0.0, start + moment - time.monotonic())):
                return
            stack.kill("operator")  # SIGKILL: no clean-up, no goodbye
            kills.append(("operator", time.monotonic() - start))
        created.wait()
        for name in OTHERS:
            if done.wait(8):
                return
            stack.kill(name)
            kills.append((name, time.monotonic() - start))

    chaos = threading.Thread(target=killer)
    chaos.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(lambda i: initiate(stack.api_url, [70000 + i % 100]), range(BURST)))
        created.set()
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and not errors:
            try:
                bodies = stack.downloadjobs()
            except Exception:  # the API server or etcd is down a moment
                time.sleep(1)
                continue
            phases = collections.Counter((d.get("status") or {}).get("phase") for d in bodies)
            if sum(phases[p.value] for p in model.Phase if p.terminal) >= BURST and len(
                kills
            ) == KILLS + len(OTHERS):
                break
            time.sleep(2)
    finally:
        created.set()
        done.set()
        chaos.join()

    assert errors == []
    assert [name for name, _ in kills] == ["operator"] * KILLS + list(OTHERS), kills
    restarts = {name: stack.supervisor.processes[name].restarts for name in ("operator", *OTHERS)}
    assert all(restarts.values()), restarts
    bodies = {d["metadata"]["name"]: d for d in stack.downloadjobs()}
    assert set(ids) <= set(bodies)
    final = collections.Counter(bodies[i]["status"]["phase"] for i in ids)
    assert final == {"Completed": BURST}, final
    jobs = stack.jobs()
    per_owner = collections.Counter(j["metadata"]["labels"][model.LABEL_JOB_NAME] for j in jobs)
    assert [o for o, n in per_owner.items() if n > 1] == [], "no DownloadJob got two Jobs"
    assert [o for o in per_owner if o not in bodies] == [], "no Job without its DownloadJob"
    for job_id in ids:
        assert per_owner[job_id] == 1, f"{job_id} has {per_owner[job_id]} Jobs"
    stack.wait_http(f"{stack.api_url}/ready", "api")
    for job_id in rng.sample(ids, 5):  # and the API, killed last, answers again
        answer = httpx.get(f"{stack.api_url}/v1/download/status/{job_id}", timeout=TIMEOUT)
        assert answer.status_code == 200 and answer.json()["status"] == "completed"
    print(
        f"\n{BURST} jobs, SIGKILLs at {[(n, round(t, 1)) for n, t in kills]} s: "
        f"{dict(final)}; duplicate Jobs 0; orphaned Jobs 0"
    )
