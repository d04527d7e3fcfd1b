"""
A worker writes only its own job's status: a ValidatingAdmissionPolicy, enforced
by the API server.

RBAC cannot name "the requester's own object": the worker's Role lets it patch the
status of every DownloadJob in its namespace. But a worker's token is bound to its
pod (the kubelet's projected tokens are, and so are the node agent's), and the API
server then puts the pod's name in the requester's extra info
(``authentication.kubernetes.io/pod-name``). A Job's pods are named after the Job
(``<job>-<5 random characters>``), and the Job after the DownloadJob (``dj-<name>``,
``dj-<name>-r<N>`` for a replay; see ``downloadjobs_operator.manifests.job_name``),
so the policy can check that the pod making a status update belongs to the
DownloadJob being updated. Updates by anyone but a worker service account are not
this policy's business.

The chart renders the same policy (``templates/worker-status-policy.yaml``;
``tests/chart/test_security.py`` compares the two); the embedded cluster's tests
install this one.
"""

from typing import Any

from downloadjobs import model

#: The extra-info key the API server fills from a token bound to a pod.
POD_NAME_KEY = "authentication.kubernetes.io/pod-name"
#: The API server cuts a generateName base to this many characters (63 - 5 random).
GENERATED_BASE_LENGTH = 58


def match_worker(service_account: str) -> str:
    """The requests this policy judges: those of ``service_account`` in the object's namespace."""
    return (
        "request.userInfo.username == "
        f"'system:serviceaccount:' + request.namespace + ':{service_account}'"
    )


VARIABLES = [
    {
        "name": "pod",
        "expression": (
            f"has(request.userInfo.extra) && '{POD_NAME_KEY}' in request.userInfo.extra && "
            f"size(request.userInfo.extra['{POD_NAME_KEY}']) == 1 ? "
            f"request.userInfo.extra['{POD_NAME_KEY}'][0] : ''"
        ),
    },
    {"name": "prefix", "expression": "'dj-' + object.metadata.name + '-'"},
]
#: The pod is ``dj-<name>-<5>`` or ``dj-<name>-r<N>-<5>``; for a name so long that the
#: API server cut the pods' generateName, its first 58 characters.
OWN_POD = (
    f"size(variables.prefix) > {GENERATED_BASE_LENGTH} ? "
    f"variables.pod.startsWith(variables.prefix.substring(0, {GENERATED_BASE_LENGTH})) : "
    "(variables.pod.startsWith(variables.prefix) && "
    "variables.pod.substring(size(variables.prefix)).matches('^(r[0-9]+-)?[a-z0-9]{5}$'))"
)
MESSAGE = (
    "'a worker may write the status of its own DownloadJob only: ' + "
    "(variables.pod == '' ? 'this token is not bound to a pod' : "
    "'pod ' + variables.pod + ' does not belong to DownloadJob ' + object.metadata.name)"
)


def policy(name: str, service_account: str) -> dict[str, Any]:
    """The ValidatingAdmissionPolicy for the workers running as ``service_account``."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [model.GROUP],
                        "apiVersions": ["*"],
                        "operations": ["UPDATE"],
                        "resources": [f"{model.PLURAL}/status"],
                    }
                ]
            },
            "matchConditions": [
                {
                    "name": "worker",
                    "expression": match_worker(service_account),
                }
            ],
            "variables": VARIABLES,
            "validations": [
                {"expression": OWN_POD, "messageExpression": MESSAGE, "reason": "Forbidden"}
            ],
        },
    }


def binding(name: str, policy_name: str) -> dict[str, Any]:
    """Its binding: deny, in every namespace (the match condition picks the requests)."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": policy_name, "validationActions": ["Deny"]},
    }
