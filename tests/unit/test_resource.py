"""Reading a DownloadJob body without trusting its shape; status patches in the model's names."""

import datetime
from typing import Any

import pytest

from downloadjobs import model, resource


def body(status: Any = None, **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": "j", **meta}, "spec": {"fileIds": [70000]}, "status": status}


@pytest.mark.parametrize(
    ("status", "phase"),
    [
        (None, model.Phase.QUEUED),
        ({}, model.Phase.QUEUED),
        ("not a mapping", model.Phase.QUEUED),
        ({"phase": "Unheard"}, model.Phase.QUEUED),
        ({"phase": "Processing"}, model.Phase.PROCESSING),
        ({"phase": "Cancelled"}, model.Phase.CANCELLED),
    ],
)
def test_the_phase_of_any_body(status: Any, phase: model.Phase) -> None:
    assert resource.phase(body(status)) is phase
    assert resource.is_finished(body(status)) is phase.terminal


def test_readers_answer_a_default_for_what_is_missing_or_malformed() -> None:
    empty: dict[str, Any] = {"metadata": {}}
    assert resource.owner(empty) == model.ANONYMOUS
    assert resource.job_name(empty) is None
    assert resource.replays(empty) == 0
    assert resource.replays(body({"replays": "3"})) == 0
    assert resource.queue_position(body({"queuePosition": 4})) == 4
    assert resource.queue_position(body({"queuePosition": "4"})) is None
    assert resource.submitted_at(empty) == ""
    assert resource.annotations(body(annotations=["not", "a", "mapping"])) == {}


def test_submitted_at_prefers_the_apis_annotation_to_the_creation_time() -> None:
    stamped = body(
        annotations={model.ANNOTATION_SUBMITTED_AT: "2026-11-29T10:00:00.000001Z"},
        creationTimestamp="2026-11-29T10:00:01Z",
    )
    assert resource.submitted_at(stamped) == "2026-11-29T10:00:00.000001Z"
    created = body(creationTimestamp="2026-11-29T10:00:01Z")
    assert resource.submitted_at(created) == "2026-11-29T10:00:01Z"
    assert resource.created_at(created) == datetime.datetime(
        2026, 11, 29, 10, 0, 1, tzinfo=datetime.UTC
    )


def test_a_status_patch_takes_the_models_names_and_writes_the_wire_names() -> None:
    when = datetime.datetime(2026, 11, 29, 10, 0, tzinfo=datetime.UTC)
    patch = resource.status_patch(
        phase=model.Phase.FAILED,
        queue_position=None,
        completed_at=when,
        error=model.JobError(reason="R", message="M"),
    )
    assert patch == {
        "phase": "Failed",
        "queuePosition": None,  # kept: a merge patch removes the field
        "completedAt": "2026-11-29T10:00:00+00:00",
        "error": {"reason": "R", "message": "M"},
    }
    with pytest.raises(TypeError, match="queuePostion"):
        resource.status_patch(queuePostion=1)
    with pytest.raises(TypeError, match="queuePosition"):
        resource.status_patch(queuePosition=1)  # the wire name is not a field name


def test_every_status_field_has_its_wire_name() -> None:
    wire = set(model.DownloadJobStatus.model_json_schema(by_alias=True)["properties"])
    assert set(resource.STATUS_FIELDS.values()) == wire


def test_times_and_counts_are_read_without_trusting_them() -> None:
    assert resource.started_at(body({"startedAt": "2026-11-29T10:00:00Z"})) == datetime.datetime(
        2026, 11, 29, 10, 0, tzinfo=datetime.UTC
    )
    assert resource.started_at(body({"startedAt": "yesterday"})) is None
    assert resource.started_at(body({"startedAt": 5})) is None
    assert resource.byte_counts(body({"bytesDone": 5, "bytesTotal": "9"})) == (5, None)
