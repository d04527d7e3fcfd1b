"""
The worker's msgspec Structs against the resource's pydantic models: the same wire
names, the same limits, so the models stay the one definition of the resource.
"""

import datetime
from typing import Any

import msgspec
import pytest
from pydantic import BaseModel, ValidationError

from downloadjobs import model
from downloadjobs_worker import wire


def wire_names(struct: type[msgspec.Struct]) -> set[str]:
    return {field.encode_name for field in msgspec.structs.fields(struct)}


def model_names(cls: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in cls.model_fields.items()}


@pytest.mark.parametrize(
    ("struct", "cls"),
    [
        (wire.WorkerStatus, model.DownloadJobStatus),
        (wire.BundleResult, model.BundleResult),
        (wire.JobError, model.JobError),
        (wire.JobSpec, model.DownloadJobSpec),
    ],
)
def test_every_field_the_worker_writes_is_one_of_the_model(
    struct: type[msgspec.Struct], cls: type[BaseModel]
) -> None:
    assert wire_names(struct) <= model_names(cls)


def test_a_full_status_patch_is_a_valid_status_with_the_same_values() -> None:
    now = datetime.datetime(2026, 11, 30, 6, 0, tzinfo=datetime.UTC)
    status = wire.WorkerStatus(
        progress=100,
        files_done=3,
        files_total=3,
        bytes_done=10,
        bytes_total=10,
        heartbeat_at=now,
        upload_id="u",
        parts_uploaded=2,
        resumed_from_part=1,
        result=wire.BundleResult(
            bucket="b",
            key="k",
            size=10,
            checksum_crc32="AAAAAA==",
            missing_file_ids=[70002],
            content_key="0" * 40,
        ),
        error=wire.JobError(reason="R", message="m"),
    )
    patch = status.to_wire()
    parsed = model.DownloadJobStatus.model_validate(patch)  # extra="forbid": no stray name
    assert parsed.to_wire() == patch
    assert parsed.heartbeat_at == now


def test_unset_fields_stay_out_of_the_patch_but_missing_ids_are_always_written() -> None:
    result = wire.BundleResult(bucket="b", key="k", size=0, missing_file_ids=[])
    assert wire.WorkerStatus(progress=0, result=result).to_wire() == {
        "progress": 0,
        "result": {"bucket": "b", "key": "k", "size": 0, "missingFileIds": []},
    }


SPECS: list[Any] = [
    {"fileIds": [70000, 70001]},
    {"fileIds": [70000], "owner": "alice"},
    {"fileIds": list(range(10_000, 10_000 + model.MAX_FILES))},
    {},
    {"fileIds": []},
    {"fileIds": [model.MIN_FILE_ID - 1]},
    {"fileIds": [model.MAX_FILE_ID + 1]},
    {"fileIds": [70000, 70000]},
    {"fileIds": list(range(10_000, 10_001 + model.MAX_FILES))},
    {"fileIds": ["70000"]},
    {"fileIds": [True]},
    {"fileIds": "70000"},
    "spec",
]


@pytest.mark.parametrize("spec", SPECS)
def test_the_worker_accepts_the_specs_the_model_accepts(spec: Any) -> None:
    try:
        expected = model.DownloadJobSpec.model_validate(spec).file_ids
    except ValidationError:
        expected = None
    try:
        got = wire.parse_spec({"spec": spec}).file_ids
    except ValueError:
        got = None
    assert got == expected


def test_an_integral_float_the_api_server_never_stores_is_refused_by_the_worker() -> None:
    # The model reads JSON's 70000.0 as 70000; the CRD's `integer` makes the API server
    # refuse it, so a worker never reads one, and refusing it is the safe side.
    assert model.DownloadJobSpec.model_validate({"fileIds": [70000.0]}).file_ids == [70000]
    with pytest.raises(ValueError, match="Expected `int`, got `float`"):
        wire.parse_spec({"spec": {"fileIds": [70000.0]}})
