"""The whole system on the embedded cluster, shared by the end-to-end tests."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from downloadjobs_embedded.stack import Stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state = Path(tmp_path_factory.mktemp("stack"))
    operator = {
        "DOWNLOADJOBS_OPERATOR_RECONCILE_INTERVAL": "2",
        "DOWNLOADJOBS_OPERATOR_MAX_RUNNING": "25",
    }
    with Stack(state, worker_delay_ms=(200, 400), backoff_base=0.5, extra_env=operator) as running:
        yield running
