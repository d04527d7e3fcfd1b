"""hadolint on every Dockerfile, and the image's shape: multi-stage, pinned, non-root."""

import re
from pathlib import Path

import pytest

from tests.chart.helpers import REPO, find_tool, run

SKIP_DIRS = {".git", ".venv", ".venv-tools", "node_modules", ".dev"}


def dockerfiles() -> list[Path]:
    found = []
    for path in REPO.rglob("*Dockerfile*"):
        if path.is_file() and not SKIP_DIRS & set(path.relative_to(REPO).parts):
            found.append(path)
    return sorted(found)


def test_there_is_a_dockerfile() -> None:
    assert REPO / "job-image" / "Dockerfile" in dockerfiles()


@pytest.mark.parametrize("dockerfile", dockerfiles(), ids=lambda p: str(p.relative_to(REPO)))
def test_hadolint_passes(dockerfile: Path) -> None:
    assert not (REPO / ".hadolint.yaml").exists(), "no global ignores: ignore inline, with reason"
    result = run([find_tool("hadolint"), "--no-color", str(dockerfile)])
    assert result.returncode == 0, result.stdout + result.stderr
    lines = dockerfile.read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            above = lines[number - 1].strip() if number else ""
            assert above.startswith("#") and "hadolint" not in above, (
                f"{dockerfile.name}:{number + 1}: say why on the comment line above the ignore"
            )


def test_the_image_is_multi_stage_pinned_and_non_root() -> None:
    text = (REPO / "job-image" / "Dockerfile").read_text()
    stages = re.findall(r"(?im)^FROM\s+(\S+)", text)
    assert len(stages) >= 2, "multi-stage: build tools stay in the build stage"
    for image in stages:
        assert re.search(r":\d+(\.\d+)+", image) or "@sha256:" in image, f"unpinned: {image}"
        assert "slim" in image or "@sha256:" in image, f"not a slim base: {image}"
    final = text[text.rfind("\nFROM ") :]
    users = re.findall(r"(?im)^USER\s+(\S+)", final)
    assert users, "the final stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 10000, f"USER {users[-1]}: numeric, non-root, high"
    assert not re.search(r"(?i)\b(gcc|build-essential|apt-get install|pip install)\b", final)


def test_dockerignore_keeps_the_build_context_small() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", "tests", "charts"):
        assert entry in ignored
