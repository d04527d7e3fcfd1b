"""The committed CRD is exactly what the model generates, and says what the API says."""

from pathlib import Path

import yaml

from downloadjobs import crd, model

ROOT = Path(__file__).parents[2]


def test_committed_crd_matches_the_model() -> None:
    committed = (ROOT / "crds" / "downloadjob.yaml").read_text()
    assert committed == crd.render_crd_yaml(), "run `make crd` and commit crds/downloadjob.yaml"


def test_crd_is_structural() -> None:
    schema = crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    text = yaml.safe_dump(schema)
    for forbidden in ("$ref", "anyOf", "additionalProperties", "title", "null"):
        assert forbidden not in text


def test_spec_limits_are_the_api_limits() -> None:
    version = crd.build_crd()["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    ids = spec["properties"]["fileIds"]
    assert ids["minItems"] == 1
    assert ids["maxItems"] == model.MAX_FILES
    assert ids["x-kubernetes-list-type"] == "set"
    assert ids["items"] == {
        "type": "integer",
        "minimum": model.MIN_FILE_ID,
        "maximum": model.MAX_FILE_ID,
    }
    assert spec["required"] == ["fileIds"]


def test_every_status_field_is_declared() -> None:
    """A real API server prunes undeclared status fields; every model field must be there."""
    version = crd.build_crd()["spec"]["versions"][0]
    declared = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    fields = {f.alias for f in model.DownloadJobStatus.model_fields.values()}
    assert fields == set(declared)


def test_printer_columns_and_names() -> None:
    spec = crd.build_crd()["spec"]
    version = spec["versions"][0]
    assert [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")] == [
        "Status",
        "Progress",
        "Files",
        "Age",
    ]
    assert version["subresources"] == {"status": {}}
    assert spec["names"]["shortNames"] == ["dj"]
