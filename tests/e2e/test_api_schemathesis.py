"""
Property-based testing of the live API against its own OpenAPI document, with the
schemathesis command line as a user runs it: every phase (examples, coverage,
fuzzing, stateful sequences along the document's links and Location headers) and
every check (``--checks all``): no server error, status codes, content types,
headers and bodies as documented, valid input accepted, invalid input refused,
405 with the right ``Allow`` for undocumented methods, and the rest.
``schemathesis.toml`` next to this file configures a check for an operation only
where its expectation is wrong for this API, and says why. The API's own request
counter (/metrics) then proves how many requests were made and that none was a 5xx.
"""

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from downloadjobs_embedded.stack import Stack
from tests.e2e.support import running_stack

CONFIG = Path(__file__).with_name("schemathesis.toml")
PHASES = "examples,coverage,fuzzing,stateful"
EXAMPLES = 100  # per operation and phase: well over 1000 requests in all


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {
        "DOWNLOADJOBS_OPERATOR_RECONCILE_INTERVAL": "30",  # the default: the fuzzer makes many
        # Generated bodies start real jobs: few run at once, and the rest get a quick 429.
        "DOWNLOADJOBS_OPERATOR_MAX_RUNNING": "2",
        "DOWNLOADJOBS_API_MAX_ACTIVE_JOBS_PER_OWNER": "4",
        "DOWNLOADJOBS_API_INITIATE_RATE": "60/minute",
        # As `make dev` runs it: CORS headers on every answer are part of what is checked.
        "DOWNLOADJOBS_API_CORS_ORIGINS": "*",
    }
    with running_stack(tmp_path_factory, "fuzzed", operator=env) as stack:
        yield stack


@pytest.fixture(scope="module")
def before(fuzzed: Stack) -> dict[str, float]:
    """The tally before fuzzing: the stack's own readiness probes (503 while the
    watch cache syncs with kube-apiserver) are not the fuzzer's requests."""
    return requests_by_code(fuzzed.api_url)


def test_every_phase_and_every_check_find_nothing(fuzzed: Stack, before: dict[str, float]) -> None:
    st = Path(sys.executable).with_name("st")
    command = [
        str(st),
        "--config-file",
        str(CONFIG),
        "run",
        f"{fuzzed.api_url}/openapi.json",
        "--phases",
        PHASES,
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES),
        "--generation-deterministic",
        "--request-timeout",
        "30",
        "--no-color",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    print(run.stdout[-6000:], run.stderr[-2000:])
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-4000:]
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert re.search(rf"✅\s+{phase}", run.stdout), f"phase {phase} did not pass"
    assert "Selected: 12/12" in run.stdout and "Tested: 12" in run.stdout


def requests_by_code(api: str) -> dict[str, float]:
    """The API's own count of the requests it answered, by status code."""
    text = httpx.get(f"{api}/metrics", timeout=30).text
    counts: dict[str, float] = {}
    for match in re.finditer(r"^downloadjobs_api_requests_total\{(.*)\} (\S+)$", text, re.M):
        code = re.search(r'code="(\d+)"', match.group(1))
        assert code is not None
        counts[code.group(1)] = counts.get(code.group(1), 0) + float(match.group(2))
    return counts


def test_a_thousand_requests_and_no_server_error(fuzzed: Stack, before: dict[str, float]) -> None:
    """Runs after the one above (file order): the API's counter is the tally."""
    after = requests_by_code(fuzzed.api_url)
    counts = {code: n - before.get(code, 0) for code, n in after.items() if n > before.get(code, 0)}
    total = sum(counts.values())
    print(f"requests by status code: {counts}, total {total:.0f}")
    assert total >= 1000, counts
    assert not {code: n for code, n in counts.items() if code.startswith("5")}, counts
