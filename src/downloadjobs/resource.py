"""
A DownloadJob body as the API server sends it: the one module that reads its raw
shape and writes status patches for it.

Readers are cheap and total: they pick one field without validating the body (a
poll is answered thousands of times a second from them) and answer a default for
anything missing or malformed. Writes go through :func:`status_patch`, which takes
the model's field names and writes the wire names, so a misspelt field fails here
instead of being pruned without a word by the API server.
"""

import datetime
import enum
from typing import Any

from pydantic import BaseModel

from downloadjobs import model

#: snake_case field name -> camelCase wire name, from the model.
STATUS_FIELDS = {
    name: field.alias or name for name, field in model.DownloadJobStatus.model_fields.items()
}


def status(body: dict[str, Any]) -> dict[str, Any]:
    raw = body.get("status")
    return raw if isinstance(raw, dict) else {}


def spec(body: dict[str, Any]) -> dict[str, Any]:
    raw = body.get("spec")
    return raw if isinstance(raw, dict) else {}


def annotations(body: dict[str, Any]) -> dict[str, str]:
    raw = (body.get("metadata") or {}).get("annotations")
    return raw if isinstance(raw, dict) else {}


def phase(body: dict[str, Any]) -> model.Phase:
    """The phase; a job the operator has not seen yet (or an unknown word) is queued."""
    raw = status(body).get("phase")
    try:
        return model.Phase(raw) if raw else model.Phase.QUEUED
    except ValueError:
        return model.Phase.QUEUED


def is_finished(body: dict[str, Any]) -> bool:
    return phase(body).terminal


def owner(body: dict[str, Any]) -> str:
    return str(spec(body).get("owner") or model.ANONYMOUS)


def submitted_at(body: dict[str, Any]) -> str:
    """When the API accepted it (microseconds), else its creation: the queue's order."""
    meta = body.get("metadata") or {}
    return str(
        annotations(body).get(model.ANNOTATION_SUBMITTED_AT) or meta.get("creationTimestamp") or ""
    )


def created_at(body: dict[str, Any]) -> datetime.datetime | None:
    return model.parse_time((body.get("metadata") or {}).get("creationTimestamp"))


def job_name(body: dict[str, Any]) -> str | None:
    value = status(body).get("jobName")
    return str(value) if value else None


def replays(body: dict[str, Any]) -> int:
    value = status(body).get("replays")
    return value if isinstance(value, int) and value >= 0 else 0


def queue_position(body: dict[str, Any]) -> int | None:
    value = status(body).get("queuePosition")
    return value if isinstance(value, int) else None


def started_at(body: dict[str, Any]) -> datetime.datetime | None:
    try:
        return model.parse_time(status(body).get("startedAt"))
    except (TypeError, ValueError):
        return None


def byte_counts(body: dict[str, Any]) -> tuple[int | None, int | None]:
    """(bytes done, bytes total) as the worker last wrote them, each None if unknown."""
    raw = status(body)
    done, total = raw.get("bytesDone"), raw.get("bytesTotal")
    return (
        done if isinstance(done, int) else None,
        total if isinstance(total, int) else None,
    )


def _wire(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [_wire(v) for v in value]
    return value


def status_patch(**fields: Any) -> dict[str, Any]:
    """
    A status merge patch from the model's field names: ``status_patch(queue_position=None)``
    gives ``{"queuePosition": None}``, and ``None`` removes the field. A name the model
    does not have raises :class:`TypeError`.
    """
    unknown = set(fields) - set(STATUS_FIELDS)
    if unknown:
        raise TypeError(f"DownloadJobStatus has no field {', '.join(sorted(unknown))}")
    return {STATUS_FIELDS[name]: _wire(value) for name, value in fields.items()}
