"""The shipped nginx config, run by the tests in front of the API (Debian's nginx)."""

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from downloadjobs_embedded.stack import free_port
from downloadjobs_embedded.supervisor import terminate

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


@contextlib.contextmanager
def running_nginx(prefix: Path, upstream: str, access_log: bool = True) -> Iterator[str]:
    """Debian's nginx with the shipped config in front of ``upstream``; its base URL."""
    binary = nginx_binary()
    port = free_port()
    (prefix / "downloadjobs.conf").write_text(shipped_config(port, upstream))
    temp = {name: prefix / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    log_line = f"access_log {prefix / 'access.log'};" if access_log else "access_log off;"
    (prefix / "nginx.conf").write_text(
        f"""
daemon off;
master_process off;
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log stderr warn;
events {{ worker_connections 256; }}
http {{
    {log_line}
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    include {prefix / "downloadjobs.conf"};
}}
"""
    )
    with (prefix / "nginx.log").open("wb") as log:
        process = subprocess.Popen(
            [binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", "stderr"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"nginx did not answer; see {prefix / 'nginx.log'}"
                    ) from None
                time.sleep(0.1)
        yield url
    finally:
        terminate(process)
