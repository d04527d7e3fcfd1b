"""
The shipped nginx configuration (deploy/nginx/downloadjobs.conf), run by the real
nginx from Debian in front of the API: a download whose simulated processing
takes longer than the proxy's 30 s read timeout completes, with plain polls and
long-polls, and no answer is ever a proxy timeout.
"""

import io
import os
import re
import shutil
import subprocess
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from downloadjobs_embedded.stack import Stack, free_port
from downloadjobs_embedded.supervisor import terminate
from tests.e2e.support import running_stack

CONF = Path(__file__).parents[2] / "deploy" / "nginx" / "downloadjobs.conf"
FILES = list(range(70040, 70052))  # 12 files at 3 s each: about 36 s of processing
PROXY_READ_TIMEOUT = 30


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


@pytest.fixture(scope="module")
def slow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory, "nginx-stack", delay_ms=(3000, 3000)) as stack:
        yield stack


@pytest.fixture(scope="module")
def proxy(slow_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = nginx_binary()
    prefix = Path(tmp_path_factory.mktemp("nginx"))
    port = free_port()
    (prefix / "downloadjobs.conf").write_text(
        shipped_config(port, f"127.0.0.1:{slow_stack.api_port}")
    )
    temp = {name: prefix / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    (prefix / "nginx.conf").write_text(
        f"""
daemon off;
master_process off;
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log stderr warn;
events {{ worker_connections 256; }}
http {{
    access_log {prefix / "access.log"};
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
        slow_stack.wait_http(f"{url}/health", "nginx", timeout=30)
        yield url
    finally:
        terminate(process)


def test_a_download_longer_than_the_proxy_timeout(proxy: str, slow_stack: Stack) -> None:
    started = time.monotonic()
    created = httpx.post(f"{proxy}/v1/download/initiate", json={"file_ids": FILES}, timeout=30)
    assert created.status_code == 202, created.text
    assert created.headers["x-request-id"]
    job = f"{proxy}{created.headers['location']}"
    plain: list[float] = []
    waits: list[float] = []
    codes: set[int] = set()
    tag = None
    body = created.json()
    with httpx.Client(timeout=60) as client:
        while body["status"] not in ("completed", "failed", "cancelled"):
            began = time.monotonic()
            response = client.get(job)
            plain.append(time.monotonic() - began)
            codes.add(response.status_code)
            body = response.json()
            tag = response.headers["etag"]
            # then a long-poll: the proxy holds it open until the job changes (<= 25 s)
            began = time.monotonic()
            waited = client.get(job, params={"waitSeconds": 25}, headers={"If-None-Match": tag})
            waits.append(time.monotonic() - began)
            codes.add(waited.status_code)
            if waited.status_code == 200:
                body = waited.json()
        elapsed = time.monotonic() - started
        assert body["status"] == "completed", body
        assert codes <= {200, 304}, codes  # never a 502/504 from the proxy
        assert elapsed > PROXY_READ_TIMEOUT, "the job must outlast the proxy's timeout"
        assert max(waits) < PROXY_READ_TIMEOUT
        assert max(plain) < 5, plain  # cache answers; generous for a loaded machine
        print(
            f"job took {elapsed:.1f} s through nginx; {len(plain)} plain polls, "
            f"slowest {max(plain) * 1000:.0f} ms; {len(waits)} long-polls, "
            f"longest {max(waits):.1f} s"
        )
        redirect = client.get(f"{job}/file")
        assert redirect.status_code == 302
        bundle = client.get(redirect.headers["location"])
    assert bundle.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(bundle.content)).namelist()
    assert len(names) == len(FILES)
