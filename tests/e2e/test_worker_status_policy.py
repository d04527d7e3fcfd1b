"""
A worker writes only its own job's status, enforced by the real kube-apiserver:
with the ValidatingAdmissionPolicy of :mod:`downloadjobs.statuspolicy` installed
(the stack does, as the chart does), a token bound to one job's worker pod (what
the node agent, like the kubelet, gives the pod) may patch that DownloadJob's
status and is refused (403) on another's; a token bound to no pod is refused too;
and jobs still complete, their workers' own writes admitted.
"""

import copy
import json
import time
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from downloadjobs import model, statuspolicy
from downloadjobs_embedded.stack import STATUS_POLICY, WORKER_SERVICE_ACCOUNT, Stack
from tests.e2e.client import initiate, poll


@pytest.fixture
def policed(stack: Stack) -> Stack:
    """The stack installs the policy as the chart does (worker.statusPolicy)."""
    admission = kubernetes.client.AdmissionregistrationV1Api(stack.client)
    installed = admission.read_validating_admission_policy(STATUS_POLICY, _preload_content=False)
    expected = statuspolicy.policy(STATUS_POLICY, WORKER_SERVICE_ACCOUNT)
    assert json.loads(installed.data)["spec"]["validations"] == expected["spec"]["validations"]
    return stack


def token(stack: Stack, pod: dict[str, Any] | None) -> str:
    """A token of the worker service account, bound to ``pod`` as a kubelet's is (or unbound)."""
    spec: dict[str, Any] = {"audiences": [], "expirationSeconds": 600}
    if pod is not None:
        meta = pod["metadata"]
        spec["boundObjectRef"] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": meta["name"],
            "uid": meta["uid"],
        }
    core = kubernetes.client.CoreV1Api(stack.client)
    response = core.create_namespaced_service_account_token(
        WORKER_SERVICE_ACCOUNT, stack.namespace, {"spec": spec}, _preload_content=False
    )
    value: str = json.loads(response.data)["status"]["token"]
    return value


def as_worker(stack: Stack, bearer: str) -> Any:
    configuration = copy.copy(stack.client.configuration)
    configuration.api_key = {"authorization": f"Bearer {bearer}"}
    configuration.api_key_prefix = {}
    configuration.cert_file = configuration.key_file = None
    configuration.refresh_api_key_hook = None  # else it puts the admin's token back
    return kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(configuration))


def patch_status(api: Any, stack: Stack, name: str) -> None:
    api.patch_namespaced_custom_object_status(
        model.GROUP,
        model.VERSION,
        stack.namespace,
        model.PLURAL,
        name,
        {"status": {"heartbeatAt": model.utcnow().isoformat()}},
    )


def running_pod(stack: Stack, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pod in stack.pods():
            if pod["metadata"]["name"].startswith(f"dj-{job_id}-") and (
                pod.get("status", {}).get("phase") in ("Pending", "Running")
            ):
                return pod
        time.sleep(0.2)
    raise AssertionError(f"no pod of {job_id} within {timeout} s")


def refused(call: Any) -> str:
    with pytest.raises(ApiException) as caught:
        call()
    assert caught.value.status == 403, caught.value.body
    return str(caught.value.body)


def test_a_worker_token_writes_only_its_own_jobs_status(policed: Stack) -> None:
    stack = policed
    slow = list(range(70000, 70030))  # 30 files at 200-400 ms: the pod lives for seconds
    mine, other = initiate(stack.api_url, slow), initiate(stack.api_url, [70001])
    worker = as_worker(stack, token(stack, running_pod(stack, mine)))

    # The policy takes effect within moments of its creation.
    deadline = time.monotonic() + 30
    while True:
        try:
            patch_status(worker, stack, other)
        except ApiException as exc:
            if exc.status == 403:
                break
            raise
        assert time.monotonic() < deadline, "the policy never took effect"
        time.sleep(0.5)
    message = refused(lambda: patch_status(worker, stack, other))
    assert "its own DownloadJob only" in message and f"dj-{mine}-" in message
    patch_status(worker, stack, mine)  # its own: admitted

    unbound = as_worker(stack, token(stack, None))
    assert "not bound to a pod" in refused(lambda: patch_status(unbound, stack, mine))

    for job_id in (mine, other):  # and the workers' own writes all went through
        final, _ = poll(stack.api_url, job_id, timeout=180)
        assert final["status"] == "completed", final
