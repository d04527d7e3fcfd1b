"""
Two operator replicas with kopf peering: the higher priority works, the other
waits; when the active one is SIGKILLed, the standby takes over once the dead
replica's keep-alive expires, and no job is lost or doubled.
"""

import time
from collections import Counter
from collections.abc import Iterator

import pytest

from downloadjobs_embedded.stack import PEERING, Stack
from tests.e2e.client import initiate, poll
from tests.e2e.support import running_stack, wait_for

LIFETIME = 5


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    operator = {
        "DOWNLOADJOBS_OPERATOR_PEERING_LIFETIME": str(LIFETIME),
        "DOWNLOADJOBS_OPERATOR_MAX_RUNNING": "4",
    }
    with running_stack(
        tmp_path_factory, "replicated", delay_ms=(200, 400), operator=operator, operators=2
    ) as stack:
        yield stack


def peers(stack: Stack) -> dict[str, int]:
    """Live keep-alives in the peering object: identity -> priority."""
    (body,) = [
        peering
        for peering in stack.objects("kopf.dev", "v1", "kopfpeerings", stack.namespace)
        if peering["metadata"]["name"] == PEERING
    ]
    return {k: v["priority"] for k, v in (body.get("status") or {}).items() if v["lifetime"]}


def log(stack: Stack, name: str) -> str:
    return (stack.state_dir / f"{name}.log").read_text()


def paused(text: str) -> bool:
    """Whether kopf's last word on peering in this log was a pause (or none: it starts paused)."""
    return text.rfind("Pausing operations") >= text.rfind("Resuming operations")


def test_the_standby_takes_over_when_the_active_replica_dies(replicated: Stack) -> None:
    wait_for(lambda: sorted(peers(replicated).values()) == [100, 200], what="both keep-alives")
    # A replica that starts before the other's first keep-alive resumes for a moment, and
    # a handler it began then may finish after it pauses: judge the standby from here on.
    wait_for(lambda: paused(log(replicated, "operator-2")), what="the standby to pause")
    time.sleep(LIFETIME)
    settled = len(log(replicated, "operator-2"))
    before = [initiate(replicated.api_url, [70000 + i, 70050 + i]) for i in range(8)]
    wait_for(
        lambda: any(j["spec"].get("suspend") is False for j in replicated.jobs()),
        what="the active replica to admit a job",
    )
    # kopf starts every replica paused and resumes only the highest live priority (a
    # replica that starts before the other's first keep-alive may resume for a moment).
    assert not paused(log(replicated, "operator"))
    standby = log(replicated, "operator-2")
    assert paused(standby) and "Handler" not in standby[settled:], standby[-2000:]
    # SIGKILL, and no supervisor to bring it back: a replica whose node is gone.
    replicated.kill("operator", restart=False)
    killed_at = time.monotonic()
    after = [initiate(replicated.api_url, [70020 + i]) for i in range(4)]

    wait_for(
        lambda: not paused(log(replicated, "operator-2")),
        timeout=LIFETIME + 30,
        what="the standby to resume",
    )
    takeover = time.monotonic() - killed_at
    finals = [poll(replicated.api_url, j, timeout=180, interval=1.0)[0] for j in before + after]
    assert [f["status"] for f in finals] == ["completed"] * len(finals), finals

    jobs = replicated.jobs()
    owners = Counter(j["metadata"]["ownerReferences"][0]["name"] for j in jobs)
    assert sorted(owners) == sorted(before + after), "every DownloadJob got its Job"
    assert set(owners.values()) == {1}, f"duplicates: {owners}"
    print(f"standby resumed {takeover:.1f} s after the SIGKILL (peering lifetime {LIFETIME} s)")
