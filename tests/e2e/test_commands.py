"""
The commands a person types: `downloadjobs dev` brings the system up and prints
where it is, `downloadjobs demo` runs the golden path against it (or against a
stack of its own), and kubectl lists the jobs through the printed kubeconfig.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from downloadjobs_embedded.stack import free_port

CLI = [sys.executable, "-m", "downloadjobs_cli"]


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("kubectl is missing; `make e2e` installs it into .venv/bin")
        pytest.skip("kubectl is not installed (make e2e installs it)")
    return path


def test_dev_then_demo_then_kubectl(tmp_path: Path) -> None:
    state = tmp_path / "dev"
    ports = [str(free_port()) for _ in range(3)]
    dev = subprocess.Popen(
        [
            *CLI,
            "dev",
            "--state-dir",
            str(state),
            "--api-port",
            ports[0],
            "--kube-port",
            ports[1],
            "--s3-port",
            ports[2],
            "--delay-ms",
            "200-400",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert dev.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any("Ctrl-C" in line for line in lines):
            line = dev.stdout.readline()
            if not line:
                break
            lines.append(line)
        banner = "".join(lines)
        assert "Ctrl-C stops everything" in banner, banner[-3000:]
        assert f"http://127.0.0.1:{ports[0]}" in banner
        kubeconfig = state / "kubeconfig"
        assert str(kubeconfig) in banner

        demo = subprocess.run(
            [*CLI, "demo", "--state-dir", str(state)], capture_output=True, text=True, timeout=180
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "using the running stack" in demo.stdout
        assert "OK: 3 entries match their sources byte for byte" in demo.stdout
        assert "processing" in demo.stdout

        env = {**os.environ, "KUBECACHEDIR": str(tmp_path / "kubecache")}
        listed = subprocess.run(
            [kubectl(), "--kubeconfig", str(kubeconfig), "get", "downloadjobs"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert listed.returncode == 0, listed.stderr
        header, row = listed.stdout.splitlines()[:2]
        assert header.split() == ["NAME", "STATUS", "PROGRESS", "FILES", "AGE"]
        assert row.split()[1:4] == ["Completed", "100", "3"]
    finally:
        dev.send_signal(signal.SIGINT)
        try:
            code = dev.wait(60)
        except subprocess.TimeoutExpired:
            dev.kill()
            raise
    assert code == 0
    assert not (state / "stack.json").exists(), "a stopped stack leaves no description behind"


def test_demo_starts_its_own_stack(tmp_path: Path) -> None:
    demo = subprocess.run(
        [*CLI, "demo", "--state-dir", str(tmp_path / "none"), "--file-ids", "70003,99999"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr[-3000:]
    assert "starting an embedded one" in demo.stdout
    assert "missing: [99999]" in demo.stdout
