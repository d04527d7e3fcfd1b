"""
An embedded Kubernetes API server: kmock's scaffold with a faithful object store.

kmock gives the HTTP plumbing, request parsing, discovery and error rendering.
This module adds the behaviour the project relies on and that kmock's own
emulator leaves out (see docs/cluster-fidelity.md for the full list):
``uid``, ``resourceVersion``, ``creationTimestamp``, ``generation``,
``generateName``; the ``status`` subresource; watch resumption from a
resourceVersion (410 Gone when too old); label and name selectors; validation
and pruning of custom resources against their CRD's schema; owner-reference
garbage collection; finalizers; and server-side table printing.
"""

import asyncio
import base64
import collections
import copy
import datetime
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp.web
import attrs
import jsonschema
import kmock
from kmock._internal import rendering

Key = tuple[str | None, str]  # (namespace, name)

#: Resources every cluster has: (group, version, plural, kind, namespaced, subresources).
BUILTIN = [
    ("", "v1", "namespaces", "Namespace", False, ()),
    ("", "v1", "pods", "Pod", True, ("status", "log")),
    ("", "v1", "events", "Event", True, ()),
    ("", "v1", "secrets", "Secret", True, ()),
    ("", "v1", "configmaps", "ConfigMap", True, ()),
    ("", "v1", "serviceaccounts", "ServiceAccount", True, ()),
    ("events.k8s.io", "v1", "events", "Event", True, ()),
    ("batch", "v1", "jobs", "Job", True, ("status",)),
    (
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        ("status",),
    ),
    ("coordination.k8s.io", "v1", "leases", "Lease", True, ()),
]
VERBS = {"get", "list", "watch", "create", "patch", "update", "delete"}
TRUE = {"true", "1", "t"}  # what Go's strconv.ParseBool accepts for watch=
HISTORY = 2000  # watch events kept per resource for resumption


class Invalid(kmock.KubernetesError):
    """422, as a real API server answers a schema violation."""


def now_rfc3339() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (also used for strategic merge of simple cases)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 JSON patch: add, replace, remove, test (what clients send)."""
    doc = copy.deepcopy(target)
    for op in ops:
        path = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = doc
        for part in path[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent.setdefault(part, {})
        last = path[-1]
        kind = op["op"]
        if kind == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if current != op.get("value"):
                raise kmock.KubernetesError(status=422, reason="Invalid", message="test failed")
        elif kind == "remove":
            del parent[int(last) if isinstance(parent, list) else last]
        elif kind in ("add", "replace"):
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if kind == "add":
                    parent.insert(index, op["value"])
                else:
                    parent[index] = op["value"]
            else:
                parent[last] = op["value"]
        else:
            raise kmock.KubernetesError(status=422, reason="Invalid", message=f"op {kind}?")
    return doc


def prune(value: Any, schema: dict[str, Any]) -> Any:
    """Drop fields the structural schema does not declare, as the API server does."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return value
    if isinstance(value, dict) and "properties" in schema:
        props = schema["properties"]
        return {k: prune(v, props[k]) for k, v in value.items() if k in props}
    if isinstance(value, list) and "items" in schema:
        return [prune(v, schema["items"]) for v in value]
    return value


def _set_lists(value: Any, schema: dict[str, Any], path: str) -> Iterator[str]:
    """Duplicates in ``x-kubernetes-list-type: set`` lists (JSON Schema cannot say it)."""
    if isinstance(value, list):
        if schema.get("x-kubernetes-list-type") == "set":
            seen = [json.dumps(v, sort_keys=True) for v in value]
            if len(set(seen)) != len(seen):
                yield f"{path}: Duplicate value"
        for i, v in enumerate(value):
            yield from _set_lists(v, schema.get("items", {}), f"{path}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _set_lists(v, schema.get("properties", {}).get(k, {}), f"{path}.{k}")


def human_age(timestamp: str | None) -> str:
    """A timestamp as the API server prints ages in tables: 45s, 3m20s, 5h, 2d."""
    if not timestamp:
        return "<unknown>"
    then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = max(0, int((datetime.datetime.now(tz=datetime.UTC) - then).total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    return f"{days}d{hours % 24}h" if days < 8 and hours % 24 else f"{days}d"


def jsonpath(obj: Any, path: str) -> Any:
    """The simple ``.a.b.c`` JSONPath of printer columns."""
    for part in path.strip(".").split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def match_labels(labels: dict[str, str], selector: str) -> bool:
    """Equality- and set-based label selectors (``a=b,c!=d,e in (f,g),!h,i``)."""
    for term in re.split(r",(?![^(]*\))", selector):
        term = term.strip()
        if not term:
            continue
        if m := re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", term):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if (labels.get(key) in values) != (op == "in") or (op == "in" and key not in labels):
                return False
        elif m := re.fullmatch(r"([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)", term):
            key, op, value = m.groups()
            if (labels.get(key) == value) != (op != "!="):
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


@attrs.define
class CustomResource:
    """What the server knows of one served CRD version."""

    kind: str
    schema: dict[str, Any]
    columns: list[dict[str, Any]]
    status_subresource: bool

    @property
    def validator(self) -> jsonschema.Draft7Validator:
        return jsonschema.Draft7Validator(self.schema)


@attrs.define(kw_only=True)
class EmbeddedApiServer(kmock.KubernetesScaffold):
    """The in-memory Kubernetes API; serve it with ``kmock.Server(server)``."""

    _store: dict[kmock.resource, dict[Key, dict[str, Any]]] = attrs.field(
        factory=lambda: collections.defaultdict(dict), init=False
    )
    _history: dict[kmock.resource, collections.deque[tuple[int, dict[str, Any]]]] = attrs.field(
        factory=lambda: collections.defaultdict(lambda: collections.deque(maxlen=HISTORY)),
        init=False,
    )
    _kinds: dict[kmock.resource, str] = attrs.field(factory=dict, init=False)
    _namespaced: dict[kmock.resource, bool] = attrs.field(factory=dict, init=False)
    _status_sub: set[kmock.resource] = attrs.field(factory=set, init=False)
    _crds: dict[kmock.resource, CustomResource] = attrs.field(factory=dict, init=False)
    _rv: int = attrs.field(default=1000, init=False)
    _changed: asyncio.Event | None = attrs.field(default=None, init=False)
    #: kmock records every request and matches each new one by scanning the record
    #: (O(n) per request): a long record makes every request slow. Keep it short.
    request_log_limit: int = 32
    #: Requests served, by "METHOD /path" (query left out): tests count what a client costs.
    request_counts: collections.Counter[str] = attrs.field(factory=collections.Counter, init=False)
    #: Requests served, by User-Agent (which process sent them).
    agent_counts: collections.Counter[str] = attrs.field(factory=collections.Counter, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for group, version, plural, kind, namespaced, subs in BUILTIN:
            self.register(kmock.resource(group, version, plural), kind, namespaced, subs)
        self.fallback[kmock.action.WATCH] << self._serve_watch
        self.fallback[kmock.action.LIST] << self._serve_list
        self.fallback[kmock.action.FETCH] << self._serve_fetch
        self.fallback[kmock.action.CREATE] << self._serve_create
        self.fallback[kmock.action.UPDATE] << self._serve_patch
        self.fallback[kmock.action.DELETE] << self._serve_delete

    # -- registry of resources -------------------------------------------------------------

    def register(
        self,
        res: kmock.resource,
        kind: str,
        namespaced: bool,
        subresources: tuple[str, ...] | list[str] = (),
        shortnames: list[str] | None = None,
        categories: list[str] | None = None,
    ) -> None:
        self.resources[res] = kmock.ResourceInfo(
            kind=kind,
            singular=kind.lower(),
            namespaced=namespaced,
            verbs=VERBS,
            shortnames=shortnames or [],
            categories=categories or [],
            subresources=list(subresources),
        )
        self._kinds[res] = kind
        self._namespaced[res] = namespaced
        if "status" in subresources:
            self._status_sub.add(res)

    def _register_crd(self, crd: dict[str, Any]) -> None:
        spec = crd["spec"]
        names = spec["names"]
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            res = kmock.resource(spec["group"], version["name"], names["plural"])
            subs = list(version.get("subresources", {}))
            self.register(
                res,
                names["kind"],
                spec.get("scope") == "Namespaced",
                subs,
                names.get("shortNames"),
                names.get("categories"),
            )
            self._crds[res] = CustomResource(
                kind=names["kind"],
                schema=version.get("schema", {}).get("openAPIV3Schema", {}),
                columns=version.get("additionalPrinterColumns", []),
                status_subresource="status" in subs,
            )

    def _known(self, res: kmock.resource | None) -> kmock.resource:
        if res is None or res not in self._kinds:
            raise kmock.KubernetesResourceNotFoundError()
        return res

    # -- the store, shared by HTTP handlers and in-process controllers ------------------------

    def _signal(self) -> None:
        if self._changed is not None:
            self._changed.set()
        self._changed = asyncio.Event()

    def _emit(self, res: kmock.resource, kind: str, obj: dict[str, Any]) -> None:
        rv = int(obj["metadata"]["resourceVersion"])
        self._history[res].append((rv, {"type": kind, "object": copy.deepcopy(obj)}))
        self._signal()

    def _bump(self, obj: dict[str, Any]) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)

    def objects(self, res: kmock.resource, namespace: str | None = None) -> list[dict[str, Any]]:
        """A snapshot of the stored objects (for controllers and test assertions)."""
        return [
            copy.deepcopy(obj)
            for (ns, _), obj in sorted(self._store[res].items(), key=lambda kv: str(kv[0]))
            if namespace is None or ns == namespace
        ]

    def read(self, res: kmock.resource, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self._store[res].get((namespace, name))
        if obj is None:
            raise kmock.KubernetesError(
                status=404, reason="NotFound", message=f"{res.plural} {name!r} not found"
            )
        return copy.deepcopy(obj)

    def insert(
        self, res: kmock.resource, namespace: str | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        res = self._known(res)
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if self._namespaced[res]:
            namespace = namespace or meta.get("namespace")
            if not namespace:
                raise Invalid(status=422, reason="Invalid", message="namespace is required")
            meta["namespace"] = namespace
        else:
            namespace = None
            meta.pop("namespace", None)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise Invalid(status=422, reason="Invalid", message="metadata.name is required")
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if (namespace, meta["name"]) in self._store[res]:
            raise kmock.KubernetesError(
                status=409,
                reason="AlreadyExists",
                message=f'{res.plural} "{meta["name"]}" already exists',
                details={"name": meta["name"], "kind": res.plural},
            )
        if res in self._status_sub:
            obj.pop("status", None)  # status is written through the subresource only
        for field in ("deletionTimestamp", "resourceVersion"):
            meta.pop(field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta["generation"] = 1
        obj.setdefault("apiVersion", f"{res.group}/{res.version}".lstrip("/"))
        obj.setdefault("kind", self._kinds[res])
        obj = self._admit(res, obj)
        self._bump(obj)
        self._store[res][(namespace, meta["name"])] = obj
        self._emit(res, "ADDED", obj)
        refs = meta.get("ownerReferences") or []
        if refs and not any(self._uid_exists(ref.get("uid")) for ref in refs):
            # The garbage collector deletes dependents whose owners are all gone.
            self._remove(res, namespace, meta["name"])
            return copy.deepcopy(obj)
        if res.group == "apiextensions.k8s.io" and res.plural == "customresourcedefinitions":
            self._register_crd(obj)
        return copy.deepcopy(obj)

    def write_patch(
        self,
        res: kmock.resource,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        subresource: str | None = None,
        json_patch_ops: bool = False,
    ) -> dict[str, Any]:
        res = self._known(res)
        current = self.read(res, namespace, name)
        patched = json_patch(current, patch) if json_patch_ops else merge_patch(current, patch)
        if res in self._status_sub:
            if subresource == "status":
                updated = {**current, "status": patched.get("status", {})}
            else:
                updated = {**patched, "status": current.get("status")}
                if updated["status"] is None:
                    updated.pop("status")
        else:
            updated = patched
        # Identity and bookkeeping fields are the server's, not the client's.
        for field in ("uid", "creationTimestamp", "namespace", "name", "generation"):
            if field in current["metadata"]:
                updated["metadata"][field] = current["metadata"][field]
        if current["metadata"].get("deletionTimestamp"):
            updated["metadata"]["deletionTimestamp"] = current["metadata"]["deletionTimestamp"]
        if updated.get("spec") != current.get("spec"):
            updated["metadata"]["generation"] = current["metadata"]["generation"] + 1
        updated = self._admit(res, updated)
        self._bump(updated)
        self._store[res][(namespace, name)] = updated
        self._emit(res, "MODIFIED", updated)
        meta = updated["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(res, namespace, name)
        return copy.deepcopy(updated)

    def remove(
        self, res: kmock.resource, namespace: str | None, name: str, orphan: bool = False
    ) -> dict[str, Any]:
        res = self._known(res)
        obj = self.read(res, namespace, name)
        if obj["metadata"].get("finalizers"):
            if not obj["metadata"].get("deletionTimestamp"):
                obj["metadata"]["deletionTimestamp"] = now_rfc3339()
                self._bump(obj)
                self._store[res][(namespace, name)] = obj
                self._emit(res, "MODIFIED", obj)
            return obj
        return self._remove(res, namespace, name, orphan=orphan)

    def _remove(
        self, res: kmock.resource, namespace: str | None, name: str, orphan: bool = False
    ) -> dict[str, Any]:
        obj = self._store[res].pop((namespace, name))
        self._bump(obj)
        self._emit(res, "DELETED", obj)
        if not orphan:
            self._collect_garbage(obj["metadata"]["uid"])
        return copy.deepcopy(obj)

    def _uid_exists(self, uid: str | None) -> bool:
        return any(
            o["metadata"].get("uid") == uid for objs in self._store.values() for o in objs.values()
        )

    def _collect_garbage(self, owner_uid: str) -> None:
        """Background cascading deletion: dependents of a deleted owner go too."""
        for res, objs in list(self._store.items()):
            for (ns, name), obj in list(objs.items()):
                refs = obj["metadata"].get("ownerReferences") or []
                if any(ref.get("uid") == owner_uid for ref in refs):
                    self.remove(res, ns, name)

    def _admit(self, res: kmock.resource, obj: dict[str, Any]) -> dict[str, Any]:
        """Validate a custom resource against its CRD's schema, then prune it."""
        crd = self._crds.get(res)
        if crd is None or not crd.schema:
            return obj
        implicit: dict[str, Any] = {
            k: obj[k] for k in ("apiVersion", "kind", "metadata") if k in obj
        }
        obj = {**prune(obj, crd.schema), **implicit}
        problems = [
            f"{'.'.join(str(p) for p in err.absolute_path) or '<root>'}: {err.message}"
            for err in crd.validator.iter_errors(obj)
        ]
        problems += list(_set_lists(obj, crd.schema, ""))
        if problems:
            name = obj["metadata"].get("name")
            raise Invalid(
                status=422,
                reason="Invalid",
                message=f'{crd.kind}.{res.group} "{name}" is invalid: ' + "; ".join(problems),
                details={"name": name, "group": res.group, "kind": crd.kind},
            )
        return obj

    async def events(
        self, res: kmock.resource, since: int = 0, timeout: float | None = None
    ) -> AsyncIterator[tuple[int, dict[str, Any]]]:
        """Stored events of ``res`` newer than ``since``, then live ones (for controllers)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        history = self._history[res]
        if since and history and history[0][0] > since + 1 and len(history) == HISTORY:
            raise kmock.KubernetesError(status=410, reason="Expired", message="too old")
        while True:
            for rv, event in list(history):
                if rv > since:
                    since = rv
                    yield rv, event
            if self._changed is None:
                self._changed = asyncio.Event()
            changed = self._changed
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                return

    @property
    def resource_version(self) -> int:
        return self._rv

    # -- HTTP handlers ----------------------------------------------------------------------

    @staticmethod
    def _selected(obj: dict[str, Any], params: dict[str, str]) -> bool:
        meta = obj.get("metadata", {})
        labels = params.get("labelSelector")
        if labels and not match_labels(meta.get("labels") or {}, labels):
            return False
        for term in filter(None, params.get("fieldSelector", "").split(",")):
            key, _, value = term.partition("=")
            if key.rstrip("=!") == "metadata.name" and (
                meta.get("name") == value.lstrip("=")
            ) == key.endswith("!"):
                return False
            if key.rstrip("=!") == "metadata.namespace" and (
                meta.get("namespace") == value.lstrip("=")
            ) == key.endswith("!"):
                return False
        return True

    async def _serve_list(self, request: rendering.Request) -> Any:
        res = self._known(request.resource)
        params = dict(request.params)
        if params.get("watch", "").lower() in TRUE:  # kmock only knows "watch=true"
            return self._serve_watch(request)
        items = [o for o in self.objects(res, request.namespace) if self._selected(o, params)]
        if "as=Table" in request.headers.get("Accept", ""):
            return self._table(res, items)
        return {
            "apiVersion": f"{res.group}/{res.version}".lstrip("/"),
            "kind": f"{self._kinds[res]}List",
            "metadata": {"resourceVersion": str(self._rv)},
            "items": items,
        }

    async def _serve_fetch(self, request: rendering.Request) -> Any:
        res = self._known(request.resource)
        assert request.name is not None
        obj = self.read(res, request.namespace, request.name)
        if "as=Table" in request.headers.get("Accept", ""):
            return self._table(res, [obj])
        return obj

    async def _serve_create(self, request: rendering.Request) -> Any:
        if not isinstance(request.data, dict):
            raise kmock.KubernetesError(status=400, reason="BadRequest", message="not JSON")
        created = self.insert(self._known(request.resource), request.namespace, request.data)
        return rendering.Response(status=201, payload=created)  # clients expect 201 Created

    async def _serve_patch(self, request: rendering.Request) -> Any:
        assert request.name is not None
        content_type = request.headers.get("Content-Type", "")
        ops = "json-patch" in content_type or isinstance(request.data, list)
        return self.write_patch(
            self._known(request.resource),
            request.namespace,
            request.name,
            request.data,
            subresource=request.subresource,
            json_patch_ops=ops,
        )

    async def _serve_delete(self, request: rendering.Request) -> Any:
        assert request.name is not None
        data = request.data if isinstance(request.data, dict) else {}
        policy = request.params.get("propagationPolicy") or data.get("propagationPolicy")
        return self.remove(
            self._known(request.resource),
            request.namespace,
            request.name,
            orphan=policy == "Orphan",
        )

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[Any]:
        res = self._known(request.resource)
        params = dict(request.params)
        if request.name:
            params["fieldSelector"] = f"metadata.name={request.name}"
        timeout = float(params.get("timeoutSeconds") or 1800)
        since_param = params.get("resourceVersion") or "0"
        yield b""  # send the headers now, so that the client sees the stream open
        since = int(since_param) if since_param.isdigit() else 0
        if since == 0:  # "0" or unset: start with the current state as ADDED events
            for obj in self.objects(res, request.namespace):
                if self._selected(obj, params):
                    yield {"type": "ADDED", "object": obj}
            since = self._rv
        try:
            async for _, event in self.events(res, since, timeout):
                obj = event["object"]
                ns = obj["metadata"].get("namespace")
                if request.namespace and ns != request.namespace:
                    continue
                if self._selected(obj, params):
                    yield event
        except kmock.KubernetesError as exc:
            yield {
                "type": "ERROR",
                "object": {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "code": exc.status,
                    "reason": exc.reason,
                    "message": exc.message,
                },
            }

    def _table(self, res: kmock.resource, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Server-side printing (``kubectl get``): the CRD's printer columns, or Name/Age."""
        crd = self._crds.get(res)
        columns = [
            c
            for c in (crd.columns if crd else [])
            if c.get("jsonPath") != ".metadata.creationTimestamp"
        ]
        definitions = [
            {
                "name": "Name",
                "type": "string",
                "format": "name",
                "priority": 0,
                "description": "Name of the object",
            }
        ]
        definitions += [
            {
                "name": c["name"],
                "type": c["type"],
                "format": c.get("format", ""),
                "priority": c.get("priority", 0),
                "description": c.get("description", ""),
            }
            for c in columns
        ]
        definitions.append(
            {
                "name": "Age",
                "type": "date",
                "format": "",
                "priority": 0,
                "description": "Time since creation",
            }
        )
        rows = []
        for obj in items:
            cells: list[Any] = [obj["metadata"]["name"]]
            for column in columns:
                value = jsonpath(obj, column["jsonPath"])
                cells.append(human_age(value) if column["type"] == "date" and value else value)
            cells.append(human_age(obj["metadata"].get("creationTimestamp")))
            rows.append(
                {
                    "cells": cells,
                    "object": {
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": obj["metadata"],
                    },
                }
            )
        return {
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": str(self._rv)},
            "columnDefinitions": definitions,
            "rows": rows,
        }

    # -- kmock plumbing ------------------------------------------------------------------------

    async def _serve_version(self, request: rendering.Request) -> Any:
        """
        Resource discovery of one group/version. kmock's own lists subresources with the
        parent's short names, which makes kubectl warn about ambiguous short names.
        """
        assert request.resource is not None
        wanted = (request.resource.group, request.resource.version)
        found = [r for r in self._kinds if (r.group, r.version) == wanted]
        if not found and request.resource.group != "":
            raise kmock.KubernetesResourceNotFoundError()
        resources = []
        for res in sorted(found, key=lambda r: str(r.plural)):
            info = self.resources[res]
            assert isinstance(info, kmock.ResourceInfo)
            resources.append(
                {
                    "name": res.plural,
                    "kind": info.kind,
                    "singularName": info.singular,
                    "namespaced": info.namespaced,
                    "verbs": sorted(info.verbs),
                    "shortNames": sorted(info.shortnames),
                    "categories": sorted(info.categories),
                }
            )
            for sub in sorted(info.subresources):
                resources.append(
                    {
                        "name": f"{res.plural}/{sub}",
                        "kind": info.kind,
                        "singularName": "",
                        "namespaced": info.namespaced,
                        "verbs": ["get", "patch", "update"],
                    }
                )
        return {
            "apiVersion": "v1",
            "kind": "APIResourceList",
            "groupVersion": f"{wanted[0]}/{wanted[1]}".lstrip("/"),
            "resources": resources,
        }

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        self.request_counts[f"{raw_request.method} {raw_request.path}"] += 1
        self.agent_counts[raw_request.headers.get("User-Agent", "")] += 1
        # kmock's path parser fails on the cluster-scoped core path /api/v1/namespaces[/name]
        # (it reads "namespaces" as the namespace marker); build that request here instead.
        if m := re.fullmatch(r"/api/v1/namespaces(?:/([^/]+))?/?", raw_request.path):
            await raw_request.read()
            get = raw_request.method == "GET"
            watch = raw_request.query.get("watch", "").lower() in TRUE
            name = m.group(1)
            if raw_request.method == "POST":
                action = kmock.action.CREATE
            elif get and watch:
                action = kmock.action.WATCH
            elif get:
                action = kmock.action.FETCH if name else kmock.action.LIST
            elif raw_request.method == "PATCH":
                action = kmock.action.UPDATE
            else:
                action = kmock.action.DELETE
            try:
                data = await raw_request.json() if raw_request.body_exists else None
            except ValueError:
                data = None
            request = rendering.Request(
                method=raw_request.method,
                url=raw_request.url,
                params=dict(raw_request.query),
                headers=dict(raw_request.headers),
                data=data,
                action=action,
                resource=kmock.resource("", "v1", "namespaces"),
                name=name,
                raw_request=raw_request,
            )
            self._requests.append(request)  # kmock matches reactions by the request's identity
            try:
                return await self._handle(request)
            except Exception as exc:
                return await self._render_error(exc)
        # kmock records every request for assertions and scans the record to match each
        # new one; trimming it keeps requests O(1) and the memory of a dev server flat.
        if len(self._requests) > self.request_log_limit:
            for holder in (self, *self._payloads):
                records = getattr(holder, "_requests", [])
                del records[: -self.request_log_limit // 2]
        return await super().__call__(raw_request)

    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        if isinstance(exc, kmock.KubernetesError):
            return aiohttp.web.json_response(
                {
                    "apiVersion": "v1",
                    "kind": "Status",
                    "metadata": {},
                    "status": "Failure",
                    "code": exc.status,
                    "reason": exc.reason,
                    "message": exc.message,
                    "details": exc.details or {},
                },
                status=exc.status,
            )
        return await super()._render_error(exc)


def decode_secret(secret: dict[str, Any]) -> dict[str, str]:
    """A Secret's data as text (``stringData`` merged, as the API server does on write)."""
    values = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    values.update(secret.get("stringData") or {})
    return values
