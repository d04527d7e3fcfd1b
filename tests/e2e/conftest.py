"""The whole system on the embedded cluster, shared by the end-to-end tests."""

from collections.abc import Iterator

import pytest

from downloadjobs_embedded.stack import Stack
from tests.e2e.support import running_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    operator = {"DOWNLOADJOBS_OPERATOR_MAX_RUNNING": "25"}
    with running_stack(
        tmp_path_factory, "stack", delay_ms=(200, 400), operator=operator
    ) as running:
        yield running
