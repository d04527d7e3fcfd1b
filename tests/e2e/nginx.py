"""The shipped nginx config, run by the tests in front of the API (Debian's nginx)."""

import os
import re
import shutil
from pathlib import Path

import pytest

CONF = Path(__file__).parents[2] / "deploy" / "nginx" / "downloadjobs.conf"


def nginx_binary() -> str:
    path = shutil.which("nginx") or shutil.which("/usr/sbin/nginx")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is missing; `make system` installs it (tools/system-packages.txt)")
        pytest.skip("nginx is not installed (make system installs it)")
    return path


def shipped_config(listen: int, upstream: str) -> str:
    """The shipped file with its two EDIT lines pointed at this test's ports."""
    text = CONF.read_text()
    assert re.search(r"proxy_read_timeout 30s;", text), "the seed's 30 s timeout is kept"
    text, servers = re.subn(r"server \S+;\s+# EDIT", f"server {upstream};  # EDIT", text)
    text, listens = re.subn(r"listen \d+;\s+# EDIT", f"listen 127.0.0.1:{listen};  # EDIT", text)
    assert servers == 1 and listens == 1
    return text
