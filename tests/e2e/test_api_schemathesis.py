"""
Property-based testing of the live API against its own OpenAPI document, with
schemathesis: every operation with generated (valid and invalid) input, then
stateful sequences along the document's links (initiate -> poll, file, cancel,
retry). Each response must be no server error and conform to the document in
status code, content type, headers and body. The API's own request counter
(/metrics) proves how many requests were made and that none was a 5xx.
"""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import checks

from downloadjobs_embedded.stack import Stack

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
EXAMPLES = 60  # per operation and mode (22 runs), and the stateful runs: about 1300 requests
SETTINGS = settings(
    max_examples=EXAMPLES,
    database=None,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state = Path(tmp_path_factory.mktemp("fuzzed"))
    env = {
        # Generated bodies start real jobs: few run at once, and most get a quick 429.
        "DOWNLOADJOBS_OPERATOR_MAX_RUNNING": "2",
        "DOWNLOADJOBS_API_MAX_ACTIVE_JOBS_PER_OWNER": "4",
        "DOWNLOADJOBS_API_INITIATE_RATE": "60/minute",
    }
    with Stack(state, extra_env=env) as stack:
        yield stack


@pytest.fixture(scope="module")
def api_schema(fuzzed: Stack) -> Any:
    return schemathesis.openapi.from_url(f"{fuzzed.api_url}/openapi.json")


def test_every_operation_conforms(api_schema: Any, fuzzed: Stack) -> None:
    """Valid and invalid input for each operation (pytest 9 rules out the schemathesis plugin)."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 11
    for operation in operations:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @SETTINGS
            def run(case: Any) -> None:
                case.call_and_validate(base_url=fuzzed.api_url, checks=CHECKS, timeout=30)

            try:
                run()
            except Unsatisfiable:  # no invalid input exists (an operation without parameters)
                assert mode is schemathesis.GenerationMode.NEGATIVE
                assert not list(operation.iter_parameters()) and not operation.body


def requests_by_code(api: str) -> dict[str, float]:
    """The API's own count of the requests it answered, by status code."""
    text = httpx.get(f"{api}/metrics", timeout=30).text
    counts: dict[str, float] = {}
    for match in re.finditer(r"^downloadjobs_api_requests_total\{(.*)\} (\S+)$", text, re.M):
        code = re.search(r'code="(\d+)"', match.group(1))
        assert code is not None
        counts[code.group(1)] = counts.get(code.group(1), 0) + float(match.group(2))
    return counts


def test_stateful_sequences_follow_the_links(api_schema: Any, fuzzed: Stack) -> None:
    machine = api_schema.as_state_machine()

    class Sequences(machine):  # type: ignore[misc,valid-type]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": fuzzed.api_url, "timeout": 30}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    Sequences.run(
        settings=settings(
            max_examples=40,
            database=None,
            stateful_step_count=6,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
    )


def test_a_thousand_requests_and_no_server_error(fuzzed: Stack) -> None:
    """Runs after the two above (file order): the API's counter is the tally."""
    counts = requests_by_code(fuzzed.api_url)
    total = sum(counts.values())
    print(f"requests by status code: {counts}, total {total:.0f}")
    assert total >= 1000, counts
    assert not {code: n for code, n in counts.items() if code.startswith("5")}, counts
