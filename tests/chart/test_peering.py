"""Operator replicas with kopf peering: the CRD, the replicas, their identities."""

from typing import Any

import pytest

from downloadjobs.crd import build_peering_crd
from tests.chart.helpers import FULLNAME, find, render


@pytest.mark.parametrize("clusterwide", [False, True], ids=["namespaced", "cluster-wide"])
def test_the_peering_crd_is_kopfs(clusterwide: bool) -> None:
    sets = {"operator.peering.enabled": "true", "operator.allNamespaces": str(clusterwide).lower()}
    docs = render(sets=sets)
    (rendered,) = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    expected = build_peering_crd(clusterwide)
    rendered["metadata"] = {"name": rendered["metadata"]["name"]}
    assert rendered == expected


def operator(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return find(docs, "Deployment", f"{FULLNAME}-operator")


def test_without_peering_one_standalone_replica() -> None:
    docs = render()
    deployment = operator(docs)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert "--standalone" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [d for d in docs if d["kind"] == "CustomResourceDefinition"]


def test_with_peering_replicas_draw_their_own_priorities() -> None:
    deployment = operator(render(sets={"operator.peering.enabled": "true"}))
    assert deployment["spec"]["replicas"] == 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert "--standalone" not in args and "--priority" not in args
    assert args[args.index("--peering") + 1] == FULLNAME
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["DOWNLOADJOBS_OPERATOR_PEERING_LIFETIME"]["value"] == "60"


def test_a_crd_installed_elsewhere_is_left_alone() -> None:
    sets = {"operator.peering.enabled": "true", "operator.peering.createCRD": "false"}
    assert not [d for d in render(sets=sets) if d["kind"] == "CustomResourceDefinition"]
