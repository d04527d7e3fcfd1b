"""Checking a bundle with Info-ZIP's ``unzip -t``, the tool a user would reach for."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def unzip_test(path: Path) -> str:
    """Run ``unzip -t`` on ``path`` and return its output; fail the test unless it passes."""
    unzip = shutil.which("unzip")
    if unzip is None:
        if os.environ.get("CI") == "true":
            pytest.fail("unzip is missing; `make system` installs it (tools/system-packages.txt)")
        pytest.skip("unzip is not installed (apt-get install unzip)")
    done = subprocess.run(
        [unzip, "-t", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "No errors detected" in done.stdout, done.stdout[-2000:]
    return done.stdout
