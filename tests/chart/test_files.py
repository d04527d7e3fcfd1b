"""The chart's files: the CRD copy, values.yaml comments, the dashboard, NOTES.txt."""

import json
import re

from tests.chart.helpers import CHART, NAMESPACE, RELEASE, REPO, find_tool, run


def test_chart_crd_is_the_generated_crd_byte_for_byte() -> None:
    # Helm installs crds/ on the first install only; docs/install.md says how to upgrade.
    chart_crd = CHART / "crds" / "downloadjob.yaml"
    assert chart_crd.read_bytes() == (REPO / "crds" / "downloadjob.yaml").read_bytes(), (
        "charts/downloadjobs/crds/downloadjob.yaml differs from crds/downloadjob.yaml: "
        "run `downloadjobs crd --write crds/downloadjob.yaml "
        "charts/downloadjobs/crds/downloadjob.yaml`"
    )


KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):")


def test_every_key_in_values_yaml_has_a_comment() -> None:
    """
    Each key has a comment line right above it. A ``# -- `` comment documents the key's
    whole value, so the keys inside that value (a Kubernetes object such as a probe or
    ``resources``) need none of their own; a plain ``#`` comment documents only a section.
    """
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    covered_below: int | None = None  # indent under which keys are documented by a parent
    for number, line in enumerate(lines):
        match = KEY.match(line)
        if not match:
            continue
        indent = len(match["indent"])
        if covered_below is not None and indent > covered_below:
            continue
        covered_below = None
        previous = lines[number - 1].strip() if number else ""
        if not previous.startswith("#"):
            undocumented.append(f"values.yaml:{number + 1}: {match['key']}")
        elif previous.startswith("# --") or _in_doc_block(lines, number):
            covered_below = indent
    assert not undocumented, "keys without a comment:\n" + "\n".join(undocumented)


def _in_doc_block(lines: list[str], number: int) -> bool:
    """Whether the comment block right above line ``number`` starts with ``# --``."""
    index = number - 1
    while index >= 0 and lines[index].strip().startswith("#"):
        if lines[index].strip().startswith("# --"):
            return True
        index -= 1
    return False


def test_the_grafana_dashboard_is_valid_json_with_panels() -> None:
    dashboard = json.loads((CHART / "dashboards" / "downloadjobs.json").read_text())
    assert dashboard["uid"] == "downloadjobs"
    assert dashboard["panels"], "the dashboard has no panels"
    for panel in dashboard["panels"]:
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]


def test_notes_tell_how_to_reach_the_api_poll_a_job_and_list_downloadjobs() -> None:
    helm = find_tool("helm")
    result = run(
        [helm, "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client"]
    )
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert f"kubectl port-forward -n {NAMESPACE} svc/{RELEASE}-downloadjobs-api" in notes
    assert "/v1/download/initiate" in notes
    assert "/v1/download/status/$JOB" in notes
    assert f"kubectl get downloadjobs -n {NAMESPACE}" in notes
