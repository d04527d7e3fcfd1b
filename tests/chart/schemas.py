"""
JSON schemas for the kinds kubernetes-validate does not know.

- DownloadJob: the project's own CRD (the chart's copy), made strict the way the API
  server's field validation is: an object that declares ``properties`` accepts no
  other field unless it says ``x-kubernetes-preserve-unknown-fields``.
- ServiceMonitor and PrometheusRule (monitoring.coreos.com/v1): the Prometheus
  Operator's CRDs are not bundled anywhere installable here, so these are hand-written
  strict subsets of its v1 API covering the fields the chart renders. A field the
  chart starts to use needs adding here, which is the point.
"""

import copy
from typing import Any

import yaml

from tests.chart.helpers import CHART


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI v3 structural schema as a JSON schema refusing undeclared fields."""
    result = copy.deepcopy(schema)

    def walk(node: dict[str, Any]) -> None:
        if node.get("x-kubernetes-int-or-string"):
            node.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
        props = node.get("properties")
        if isinstance(props, dict):
            for child in props.values():
                walk(child)
            if "additionalProperties" not in node and not node.get(
                "x-kubernetes-preserve-unknown-fields"
            ):
                node["additionalProperties"] = False
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                walk(node[key])
        for key in ("allOf", "anyOf", "oneOf"):
            for child in node.get(key, []):
                walk(child)

    walk(result)
    return result


def downloadjob_schema() -> dict[str, Any]:
    crd = yaml.safe_load((CHART / "crds" / "downloadjob.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["storage"]]
    schema = strict(version["schema"]["openAPIV3Schema"])
    schema["properties"]["apiVersion"] = {"const": f"{crd['spec']['group']}/{version['name']}"}
    schema["properties"]["kind"] = {"const": crd["spec"]["names"]["kind"]}
    schema["properties"]["metadata"] = OBJECT_META
    return schema


STRING = {"type": "string"}
STRING_MAP = {"type": "object", "additionalProperties": STRING}
OBJECT_META = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": STRING,
        "namespace": STRING,
        "labels": STRING_MAP,
        "annotations": STRING_MAP,
    },
}
LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"matchLabels": STRING_MAP, "matchExpressions": {"type": "array"}},
}
#: A Prometheus duration, as the Prometheus Operator's CRDs define it.
DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
    r"(([0-9]+)s)?(([0-9]+)ms)?)$",
}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "required": required or [],
    }


SERVICE_MONITOR = _object(
    {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": OBJECT_META,
        "spec": _object(
            {
                "selector": LABEL_SELECTOR,
                "namespaceSelector": _object(
                    {"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": STRING}}
                ),
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": _object(
                        {
                            "port": STRING,
                            "targetPort": {"type": ["integer", "string"]},
                            "path": STRING,
                            "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                            "interval": DURATION,
                            "scrapeTimeout": DURATION,
                            "honorLabels": {"type": "boolean"},
                        }
                    ),
                },
                "jobLabel": STRING,
            },
            required=["selector", "endpoints"],
        ),
    },
    required=["apiVersion", "kind", "metadata", "spec"],
)

PROMETHEUS_RULE = _object(
    {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": OBJECT_META,
        "spec": _object(
            {
                "groups": {
                    "type": "array",
                    "items": _object(
                        {
                            "name": {"type": "string", "minLength": 1},
                            "interval": DURATION,
                            "rules": {
                                "type": "array",
                                "items": _object(
                                    {
                                        "alert": STRING,
                                        "record": STRING,
                                        "expr": {"type": ["string", "integer"]},
                                        "for": DURATION,
                                        "keep_firing_for": DURATION,
                                        "labels": STRING_MAP,
                                        "annotations": STRING_MAP,
                                    },
                                    required=["expr"],
                                ),
                            },
                        },
                        required=["name", "rules"],
                    ),
                }
            },
            required=["groups"],
        ),
    },
    required=["apiVersion", "kind", "metadata", "spec"],
)


def custom_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """Schemas by (apiVersion, kind)."""
    return {
        ("downloadjobs.dev/v1alpha1", "DownloadJob"): downloadjob_schema(),
        ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
        ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUS_RULE,
    }
