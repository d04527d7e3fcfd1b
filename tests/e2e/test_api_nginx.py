"""
The shipped nginx configuration (deploy/nginx/downloadjobs.conf), run by the real
nginx from Debian in front of the API: a download whose simulated processing
takes longer than the proxy's 30 s read timeout completes, with plain polls and
long-polls, and no answer is ever a proxy timeout.
"""

import io
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from downloadjobs_embedded.stack import Stack
from tests.e2e.nginx import running_nginx
from tests.e2e.support import running_stack

FILES = list(range(70040, 70052))  # 12 files at 3 s each: about 36 s of processing
PROXY_READ_TIMEOUT = 30


@pytest.fixture(scope="module")
def slow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory, "nginx-stack", delay_ms=(3000, 3000)) as stack:
        yield stack


@pytest.fixture(scope="module")
def proxy(slow_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    prefix = Path(tmp_path_factory.mktemp("nginx"))
    with running_nginx(prefix, f"127.0.0.1:{slow_stack.api_port}") as url:
        yield url


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
