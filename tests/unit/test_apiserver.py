"""The embedded API server behaves like a real one where the project relies on it."""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import kmock
import pytest

from downloadjobs import crd, model
from downloadjobs_embedded.apiserver import EmbeddedApiServer, match_labels

DJ = kmock.resource(model.GROUP, model.VERSION, model.PLURAL)
JOBS = kmock.resource("batch", "v1", "jobs")
PODS = kmock.resource("", "v1", "pods")
CRDS = kmock.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
BASE = f"/apis/{model.GROUP}/{model.VERSION}/namespaces/ns/{model.PLURAL}"


@pytest.fixture
def server() -> EmbeddedApiServer:
    srv = EmbeddedApiServer()
    srv.insert(CRDS, None, crd.build_crd())
    return srv


@pytest.fixture
async def http(server: EmbeddedApiServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with (
        server,
        kmock.Server(server) as running,
        aiohttp.ClientSession(str(running.url)) as session,
    ):
        yield session


def dj(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": model.API_VERSION,
        "kind": model.KIND,
        "metadata": {"name": name},
        "spec": {"fileIds": [70000], **spec},
    }


def test_create_assigns_identity(server: EmbeddedApiServer) -> None:
    a = server.insert(DJ, "ns", dj("a"))
    b = server.insert(DJ, "ns", {**dj(""), "metadata": {"generateName": "job-"}})
    for obj in (a, b):
        meta = obj["metadata"]
        assert meta["uid"] and meta["creationTimestamp"] and meta["generation"] == 1
        assert meta["namespace"] == "ns"
    assert a["metadata"]["uid"] != b["metadata"]["uid"]
    assert b["metadata"]["name"].startswith("job-") and len(b["metadata"]["name"]) == 9
    assert int(b["metadata"]["resourceVersion"]) > int(a["metadata"]["resourceVersion"])
    with pytest.raises(kmock.KubernetesError) as conflict:
        server.insert(DJ, "ns", dj("a"))
    assert conflict.value.status == 409


def test_status_subresource_is_separate(server: EmbeddedApiServer) -> None:
    created = server.insert(DJ, "ns", {**dj("a"), "status": {"phase": "Completed"}})
    assert "status" not in created, "status is ignored on create"
    main = server.write_patch(
        DJ, "ns", "a", {"spec": {"fileIds": [70001]}, "status": {"phase": "Failed"}}
    )
    assert main["spec"]["fileIds"] == [70001] and "status" not in main
    assert main["metadata"]["generation"] == 2
    status = server.write_patch(
        DJ,
        "ns",
        "a",
        {"spec": {"fileIds": [70002]}, "status": {"phase": "Queued"}},
        subresource="status",
    )
    assert status["spec"]["fileIds"] == [70001], "a status patch never touches spec"
    assert status["status"] == {"phase": "Queued"}
    assert status["metadata"]["generation"] == 2


def test_a_schema_without_apiversion_and_kind_keeps_them(server: EmbeddedApiServer) -> None:
    """kopf's peering CRD declares only ``status``; the real server keeps the rest."""
    server.insert(CRDS, None, crd.build_peering_crd())
    peerings = kmock.resource("kopf.dev", "v1", "kopfpeerings")
    server.insert(
        peerings,
        "ns",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "p"}},
    )
    patch = {"status": {"op-1": {"priority": 100, "lifetime": 5, "lastseen": "x"}}}
    patched = server.write_patch(peerings, "ns", "p", patch)
    assert patched["apiVersion"] == "kopf.dev/v1" and patched["kind"] == "KopfPeering"
    assert patched["status"] == patch["status"]
    gone = server.write_patch(peerings, "ns", "p", {"status": {"op-1": None}})
    assert gone["status"] == {}


def test_custom_resources_are_validated_and_pruned(server: EmbeddedApiServer) -> None:
    for bad in (
        {"fileIds": [1]},
        {"fileIds": []},
        {"fileIds": [70000, 70000]},
        {"fileIds": ["x"]},
        {},
    ):
        with pytest.raises(kmock.KubernetesError) as invalid:
            server.insert(DJ, "ns", {**dj("bad"), "spec": bad})
        assert invalid.value.status == 422
    assert server.objects(DJ) == []
    server.insert(DJ, "ns", {**dj("a"), "spec": {"fileIds": [70000], "unknown": 1}})
    patched = server.write_patch(
        DJ,
        "ns",
        "a",
        {
            "status": {
                "phase": "Queued",
                "bogus": 1,
                "result": {"bucket": "b", "key": "k", "size": 1, "sha256": "0" * 64, "url": "x"},
            }
        },
        subresource="status",
    )
    assert "unknown" not in patched["spec"]
    assert "bogus" not in patched["status"]
    assert "url" not in patched["status"]["result"]
    with pytest.raises(kmock.KubernetesError):
        server.write_patch(DJ, "ns", "a", {"status": {"progress": 101}}, subresource="status")


def test_owner_references_are_garbage_collected(server: EmbeddedApiServer) -> None:
    owner = server.insert(DJ, "ns", dj("a"))
    ref = {
        "apiVersion": model.API_VERSION,
        "kind": model.KIND,
        "name": "a",
        "uid": owner["metadata"]["uid"],
    }
    job = server.insert(JOBS, "ns", {"metadata": {"name": "j", "ownerReferences": [ref]}})
    pod_ref = {"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": job["metadata"]["uid"]}
    server.insert(PODS, "ns", {"metadata": {"name": "p", "ownerReferences": [pod_ref]}})
    server.insert(PODS, "ns", {"metadata": {"name": "unowned"}})
    server.remove(DJ, "ns", "a")
    assert server.objects(JOBS) == []
    assert [p["metadata"]["name"] for p in server.objects(PODS)] == ["unowned"]


def test_dependents_of_a_gone_owner_are_collected(server: EmbeddedApiServer) -> None:
    ref = {"apiVersion": "v1", "kind": "X", "name": "gone", "uid": "no-such-uid"}
    server.insert(JOBS, "ns", {"metadata": {"name": "orphan", "ownerReferences": [ref]}})
    assert server.objects(JOBS) == []


def test_finalizers_hold_deletion(server: EmbeddedApiServer) -> None:
    server.insert(DJ, "ns", {**dj("a"), "metadata": {"name": "a", "finalizers": ["x/y"]}})
    marked = server.remove(DJ, "ns", "a")
    assert marked["metadata"]["deletionTimestamp"]
    assert len(server.objects(DJ)) == 1
    server.write_patch(DJ, "ns", "a", {"metadata": {"finalizers": None}})
    assert server.objects(DJ) == []


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=a", True),
        ("app=b", False),
        ("app!=b", True),
        ("app", True),
        ("!app", False),
        ("app in (a,b)", True),
        ("app notin (a,b)", False),
        ("app=a,tier=web", True),
        ("app=a,tier=db", False),
        ("other", False),
    ],
)
def test_label_selectors(selector: str, expected: bool) -> None:
    assert match_labels({"app": "a", "tier": "web"}, selector) is expected


async def test_watch_resumes_from_a_resource_version(
    server: EmbeddedApiServer, http: aiohttp.ClientSession
) -> None:
    first = server.insert(DJ, "ns", dj("a"))
    server.insert(DJ, "ns", dj("b"))
    since = first["metadata"]["resourceVersion"]
    async with http.get(
        BASE, params={"watch": "true", "resourceVersion": since, "timeoutSeconds": "1"}
    ) as response:
        events = [json.loads(line) async for line in response.content if line.strip()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "b")]


async def test_watch_without_version_lists_then_follows(
    server: EmbeddedApiServer, http: aiohttp.ClientSession
) -> None:
    server.insert(DJ, "ns", dj("a"))

    async def later() -> None:
        await asyncio.sleep(0.2)
        server.write_patch(DJ, "ns", "a", {"status": {"phase": "Queued"}}, subresource="status")
        server.remove(DJ, "ns", "a")

    task = asyncio.create_task(later())
    async with http.get(BASE, params={"watch": "True", "timeoutSeconds": "1"}) as response:
        events = [json.loads(line) async for line in response.content if line.strip()]
    await task
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]


async def test_watch_from_a_forgotten_version_is_gone(
    server: EmbeddedApiServer, http: aiohttp.ClientSession
) -> None:
    from downloadjobs_embedded import apiserver

    first = server.insert(DJ, "ns", dj("a"))
    for i in range(apiserver.HISTORY + 5):
        server.write_patch(DJ, "ns", "a", {"status": {"progress": i % 100}}, subresource="status")
    async with http.get(
        BASE,
        params={
            "watch": "true",
            "timeoutSeconds": "1",
            "resourceVersion": first["metadata"]["resourceVersion"],
        },
    ) as r:
        events = [json.loads(line) async for line in r.content if line.strip()]
    assert events[-1]["type"] == "ERROR"
    assert events[-1]["object"]["code"] == 410


async def test_http_create_answers_201_and_422(
    server: EmbeddedApiServer, http: aiohttp.ClientSession
) -> None:
    async with http.post(BASE, json=dj("a")) as created:
        assert created.status == 201
        assert (await created.json())["metadata"]["uid"]
    async with http.post(BASE, json={**dj("b"), "spec": {"fileIds": [1]}}) as invalid:
        assert invalid.status == 422
        body = await invalid.json()
        assert body["kind"] == "Status" and body["reason"] == "Invalid"
        assert "spec.fileIds" in body["message"]
    async with http.post(BASE, json=dj("a")) as conflict:
        assert conflict.status == 409
        assert (await conflict.json())["reason"] == "AlreadyExists"


async def test_server_side_table_printing(
    server: EmbeddedApiServer, http: aiohttp.ClientSession
) -> None:
    server.insert(DJ, "ns", dj("a"))
    server.write_patch(
        DJ,
        "ns",
        "a",
        {"status": {"phase": "Processing", "progress": 45, "filesTotal": 1}},
        subresource="status",
    )
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    async with http.get(BASE, headers={"Accept": accept}) as response:
        table = await response.json()
    assert table["kind"] == "Table"
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names == ["Name", "Status", "Progress", "Files", "Owner", "Job", "Age"]
    assert table["rows"][0]["cells"][:4] == ["a", "Processing", 45, 1]


async def test_cluster_scoped_namespaces_path(
    server: EmbeddedApiServer, http: aiohttp.ClientSession
) -> None:
    """kmock's own parser fails on /api/v1/namespaces; kopf -n NS needs it."""
    async with http.post("/api/v1/namespaces", json={"metadata": {"name": "ns"}}) as created:
        assert created.status == 201
    async with http.get("/api/v1/namespaces") as listed:
        assert [n["metadata"]["name"] for n in (await listed.json())["items"]] == ["ns"]
    async with http.get("/api/v1/namespaces/ns") as fetched:
        assert (await fetched.json())["metadata"]["name"] == "ns"
