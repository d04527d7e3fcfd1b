"""The whole system on the embedded cluster, shared by the end-to-end tests."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from downloadjobs_embedded.stack import Stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state = Path(tmp_path_factory.mktemp("stack"))
    with Stack(state, worker_delay_ms=(200, 400), backoff_base=0.5) as running:
        yield running
