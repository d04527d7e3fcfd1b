"""
RBAC, exactly: what each of the three service accounts may do, rendered by helm.

Rights are flattened to (scope, API group, resource, verb) so that a rule split or
merged differently still compares equal, and anything extra shows up.
"""

from typing import Any

import pytest

from tests.chart.helpers import FULLNAME, NAMESPACE, render

Right = tuple[str, str, str, str]
NS = f"namespace:{NAMESPACE}"
CLUSTER = "cluster"


def rights(scope: str, group: str, resource: str, *verbs: str) -> set[Right]:
    return {(scope, group, resource, verb) for verb in verbs}


READ = ("get", "list", "watch")


def operator_rights(scope: str) -> set[Right]:
    return (
        # No update (kopf never PUTs), no get of the status subresource, no events.k8s.io:
        # only what the operator and kopf call.
        rights(scope, "downloadjobs.dev", "downloadjobs", *READ, "patch", "delete")
        | rights(scope, "downloadjobs.dev", "downloadjobs/status", "patch")
        # patch: Jobs are created suspended and admitted by unsuspending them.
        | rights(scope, "batch", "jobs", *READ, "create", "patch", "delete")
        | rights(scope, "", "pods", "list", "delete")
        | rights(scope, "", "events", "create", "list")
    )


# patch: cancel and retry are annotations on the DownloadJob (api/downloadjobs_api/jobs.py).
API = rights(NS, "downloadjobs.dev", "downloadjobs", "create", *READ, "patch")
WORKER = rights(NS, "downloadjobs.dev", "downloadjobs", "get") | rights(
    NS, "downloadjobs.dev", "downloadjobs/status", "patch"
)
CRDS = rights(CLUSTER, "apiextensions.k8s.io", "customresourcedefinitions", "get", "list", "watch")
NAMESPACES = rights(CLUSTER, "", "namespaces", "list", "watch")
PEERING = rights(NS, "kopf.dev", "kopfpeerings", *READ, "patch", "create")
CLUSTER_PEERING = rights(CLUSTER, "kopf.dev", "clusterkopfpeerings", *READ, "patch", "create")


def granted(docs: list[dict[str, Any]]) -> dict[str, set[Right]]:
    """The rights of each service account, by the name of the account."""
    roles = {
        (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
        for d in docs
        if d["kind"] in ("Role", "ClusterRole")
    }
    result: dict[str, set[Right]] = {}
    for binding in (d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        namespace = binding["metadata"].get("namespace")
        scope = CLUSTER if binding["kind"] == "ClusterRoleBinding" else f"namespace:{namespace}"
        ref = binding["roleRef"]
        role_key = (ref["kind"], namespace if ref["kind"] == "Role" else None, ref["name"])
        assert role_key in roles, f"{binding['metadata']['name']} binds a role not in the chart"
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount", subject
            assert subject["namespace"] == NAMESPACE, subject
            bucket = result.setdefault(subject["name"], set())
            for rule in roles[role_key]["rules"]:
                assert set(rule) <= {"apiGroups", "resources", "verbs"}, rule
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        for verb in rule["verbs"]:
                            bucket.add((scope, group, resource, verb))
    return result


ACCOUNTS = (f"{FULLNAME}-api", f"{FULLNAME}-operator", f"{FULLNAME}-worker")


@pytest.mark.parametrize(
    ("sets", "operator"),
    [
        pytest.param({}, operator_rights(NS) | CRDS | NAMESPACES, id="namespace-scoped"),
        pytest.param(
            {"operator.clusterScanning": "false"}, operator_rights(NS), id="no-cluster-rights"
        ),
        pytest.param(
            {"operator.peering.enabled": "true"},
            operator_rights(NS) | CRDS | NAMESPACES | PEERING,
            id="peering",
        ),
        pytest.param(
            {"operator.allNamespaces": "true"},
            operator_rights(CLUSTER) | CRDS,
            id="all-namespaces",
        ),
        pytest.param(
            {"operator.allNamespaces": "true", "operator.peering.enabled": "true"},
            operator_rights(CLUSTER) | CRDS | CLUSTER_PEERING,
            id="all-namespaces-peering",
        ),
    ],
)
def test_each_service_account_has_exactly_its_rights(
    sets: dict[str, str], operator: set[Right]
) -> None:
    docs = render(sets=sets)
    by_account = granted(docs)
    assert set(by_account) == set(ACCOUNTS)
    api, operator_account, worker = ACCOUNTS
    assert by_account[api] == API
    assert by_account[worker] == WORKER
    assert by_account[operator_account] == operator, (
        f"missing: {sorted(operator - by_account[operator_account])}, "
        f"extra: {sorted(by_account[operator_account] - operator)}"
    )


def test_worker_may_only_get_downloadjobs_and_patch_their_status(
    default_docs: list[dict[str, Any]], all_on_docs: list[dict[str, Any]]
) -> None:
    for docs in (default_docs, all_on_docs):
        assert granted(docs)[f"{FULLNAME}-worker"] == {
            (NS, "downloadjobs.dev", "downloadjobs", "get"),
            (NS, "downloadjobs.dev", "downloadjobs/status", "patch"),
        }


def test_no_wildcards_and_no_secrets_anywhere(
    default_docs: list[dict[str, Any]], all_on_docs: list[dict[str, Any]]
) -> None:
    roles = [d for d in default_docs + all_on_docs if d["kind"] in ("Role", "ClusterRole")]
    assert roles
    for role in roles:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                for value in rule.get(field, []):
                    assert "*" not in value, f"{role['metadata']['name']}: {field} {value!r}"
            assert "secrets" not in rule["resources"], role["metadata"]["name"]
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])


def test_cluster_scoped_objects_only_for_kopf_observation_unless_cluster_wide(
    default_docs: list[dict[str, Any]],
) -> None:
    cluster_roles = [d for d in default_docs if d["kind"] == "ClusterRole"]
    assert [r["metadata"]["name"] for r in cluster_roles] == [f"{NAMESPACE}-{FULLNAME}-scanning"]
    no_cluster = render(sets={"operator.clusterScanning": "false"})
    assert not [d for d in no_cluster if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]


def test_rbac_create_false_renders_no_rbac() -> None:
    docs = render(sets={"rbac.create": "false"})
    assert not [d for d in docs if d["kind"].endswith(("Role", "RoleBinding"))]
