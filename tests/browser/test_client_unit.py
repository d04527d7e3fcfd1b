"""
The JavaScript client's unit tests (backoff schedule, state machine, polling loop),
run by Node's built-in test runner: ``node --test tests/browser/js/``. A missing
``node`` skips on a laptop and fails in CI, like every tool the tests drive.
"""

import subprocess
from pathlib import Path

from tests.browser.conftest import require

JS_TESTS = Path(__file__).parent / "js"


def test_client_unit_tests_pass_under_node() -> None:
    node = require("node", "nodejs")
    tests = sorted(str(path) for path in JS_TESTS.glob("*.test.mjs"))
    assert tests, f"no JavaScript tests in {JS_TESTS}"
    result = subprocess.run(
        [node, "--experimental-detect-module", "--test", *tests],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
