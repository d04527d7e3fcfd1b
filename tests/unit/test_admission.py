"""First in, first out, within the caps: admission as a pure function."""

import time

from downloadjobs import model, resource
from downloadjobs.settings import S3Settings
from downloadjobs_operator import actions
from downloadjobs_operator.admission import Waiting, job_running, order_key, plan
from downloadjobs_operator.context import Context
from downloadjobs_operator.queue import AdmissionQueue
from downloadjobs_operator.settings import OperatorSettings
from tests.unit.fakes import FakeCluster


def waiting(*names: str, owner: str = "a") -> list[Waiting]:
    return [Waiting(n, owner, ("2026-01-01T00:00:00Z", f"{i:03}", n)) for i, n in enumerate(names)]


def test_admits_the_oldest_into_free_slots() -> None:
    result = plan(waiting("j1", "j2", "j3", "j4"), ["x", "y"], max_running=3)
    assert result.admit == ["j1"]
    assert result.positions == {"j2": 1, "j3": 2, "j4": 3}


def test_full_means_nobody_moves() -> None:
    result = plan(waiting("j1", "j2"), ["x"] * 5, max_running=5)
    assert result.admit == []
    assert result.positions == {"j1": 1, "j2": 2}


def test_order_is_submission_order_not_names() -> None:
    late = Waiting("aaa", "o", ("2026-01-01T00:00:01Z", "2026-01-01T00:00:01.5", "aaa"))
    early = Waiting("zzz", "o", ("2026-01-01T00:00:01Z", "2026-01-01T00:00:01.1", "zzz"))
    assert plan([late, early], [], max_running=1).admit == ["zzz"]


def test_per_owner_cap_skips_without_blocking_others() -> None:
    queue = [*waiting("a1", "a2", owner="alice"), *waiting("b1", owner="bob")]
    queue = sorted(queue, key=lambda w: w.name)
    result = plan(queue, ["alice"], max_running=3, max_running_per_owner=1)
    assert result.admit == ["b1"]
    assert result.positions == {"a1": 1, "a2": 2}


def test_order_key_reads_the_submission_annotation() -> None:
    body = {
        "metadata": {
            "name": "n",
            "creationTimestamp": "t",
            "annotations": {"downloadjobs.dev/submitted-at": "s"},
        }
    }
    assert order_key(body) == ("t", "s", "n")


def test_running_means_admitted_and_unfinished() -> None:
    assert job_running({"spec": {"suspend": False}, "status": {"active": 1}})
    assert not job_running({"spec": {"suspend": True}})
    done = {"type": "Complete", "status": "True"}
    assert not job_running({"spec": {}, "status": {"conditions": [done]}})


class SlowFirstAdmission(FakeCluster):
    """The first Job's unsuspension is slow: a pass that sent its admissions together
    would see the later ones land before it."""

    def unsuspend_job(self, namespace: str, name: str) -> bool:
        if name == "dj-e":  # the oldest
            time.sleep(0.2)
        return super().unsuspend_job(namespace, name)


def test_a_pass_lands_its_admissions_oldest_first() -> None:
    cluster = SlowFirstAdmission()
    settings = OperatorSettings(max_running=3, reuse_bundles=False)
    ctx = Context(cluster, None, S3Settings(source_bucket="s", bundle_bucket="b"), settings)  # type: ignore[arg-type]
    for index, name in enumerate(["e", "d", "c", "b", "a"]):  # names against their age
        body = {
            "metadata": {
                "name": name,
                "namespace": "ns",
                "uid": name,
                "annotations": {model.ANNOTATION_SUBMITTED_AT: f"2026-11-30T00:00:0{index}Z"},
            },
            "spec": {"fileIds": [index], "owner": "alice"},
        }
        assert actions.enqueue(ctx, cluster.add(body)) is actions.Outcome.CREATED
    AdmissionQueue(cluster, settings, lambda body: True)._pass("ns")
    assert cluster.unsuspended == ["dj-e", "dj-d", "dj-c"]
    assert [resource.queue_position(cluster.bodies[n]) for n in ("b", "a")] == [1, 2]
