from typing import Any

import pytest

from tests.chart.helpers import RENDERINGS, render


@pytest.fixture(scope="session")
def renderings() -> dict[str, list[dict[str, Any]]]:
    """Both renderings of the chart, parsed (rendered once per session)."""
    return {name: render(values) for name, values in RENDERINGS.items()}


@pytest.fixture(scope="session")
def default_docs(renderings: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return renderings["default"]


@pytest.fixture(scope="session")
def all_on_docs(renderings: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return renderings["all-on"]
