"""
A frontend served from a second local origin (as a React app on its own dev server is)
imports the browser client from the API, completes a download through it and reads the
headers the API exposes: CORS as `make dev` configures it, in a real Chromium.
"""

import functools
import json
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from downloadjobs_embedded.stack import Stack

PAGE = Path(__file__).with_name("other_origin")
JOB_WAIT_MS = 120_000


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def other_origin() -> Iterator[str]:
    """A plain static server on another port of localhost: another origin than the API's."""
    handler = functools.partial(_Quiet, directory=str(PAGE))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_page_on_another_origin_completes_a_download(
    page: Page, stack: Stack, other_origin: str
) -> None:
    assert not other_origin.startswith(stack.api_url)
    page.goto(f"{other_origin}/index.html?api={stack.api_url}")
    body = page.locator("body")
    expect(body).to_have_attribute("data-status", "completed", timeout=JOB_WAIT_MS)
    expect(body).to_have_attribute("data-index", "DownloadJobs", timeout=10_000)
    assert body.get_attribute("data-error") is None
    url = body.get_attribute("data-download-url")
    assert url and url.startswith("http")
    bundle = httpx.get(url, timeout=30)
    assert bundle.status_code == 200 and bundle.content[:2] == b"PK"
    headers = json.loads(body.get_attribute("data-headers") or "{}")
    assert all(headers.values()), headers  # every exposed header was readable
