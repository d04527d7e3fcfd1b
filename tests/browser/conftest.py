"""
Fixtures of the browser tests: the dev stack, and Debian's Chromium driven by Playwright.

No browser is downloaded (never ``playwright install``): Playwright launches the
``chromium`` Debian package through ``executable_path``. A missing Chromium skips
these tests on a laptop and fails them in CI (``CI=true``); ``make system`` installs it.
The page runs with its real Content-Security-Policy (no ``bypass_csp``), and any
CSP violation or uncaught page error fails the test that caused it.
"""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Request, sync_playwright

from downloadjobs_cli.dev import DEV_ENV
from downloadjobs_embedded.stack import Stack

REPO = Path(__file__).resolve().parents[2]
#: Where the mid-download screenshot goes; `make screenshot` points it at docs/.
SCREENSHOT = Path(
    os.environ.get("DOWNLOADJOBS_SCREENSHOT", REPO / "artifacts" / "browser" / "mid-download.png")
)
#: Flags known to work as root in a container; Playwright adds headless and the profile dir.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require(command: str, package: str) -> str:
    """The path of a Debian command; fail in CI, else skip, when it is missing."""
    path = shutil.which(command)
    if path is not None:
        return path
    message = f"{command} is not installed (apt-get install -y {package}, or `make system`)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The dev stack (any origin allowed, as `make dev`), files slow enough to watch a bar move."""
    state = Path(tmp_path_factory.mktemp("browser-stack"))
    # Each test watches a bundle being built: no reuse of the one an earlier test built.
    env = {**DEV_ENV, "DOWNLOADJOBS_OPERATOR_REUSE_BUNDLES": "false"}
    with Stack(state, worker_delay_ms=(1500, 2000), backoff_base=0.5, extra_env=env) as running:
        yield running


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = require("chromium", "chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class PageLog:
    """What the page did: every request it sent, every console error, every page error."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.errors: list[str] = []

    def on_request(self, request: Request) -> None:
        self.requests.append((request.method, request.url))

    def count(self, fragment: str) -> int:
        return sum(1 for _, url in self.requests if fragment in url)


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(accept_downloads=True, viewport={"width": 900, "height": 640})
    yield context
    context.close()


@pytest.fixture
def page_log() -> PageLog:
    return PageLog()


@pytest.fixture
def page(context: BrowserContext, page_log: PageLog) -> Iterator[Page]:
    page = context.new_page()
    page.on("request", page_log.on_request)
    page.on(
        "console",
        lambda message: page_log.errors.append(message.text) if message.type == "error" else None,
    )
    page.on("pageerror", lambda error: page_log.errors.append(f"page error: {error}"))
    yield page
    violations = [e for e in page_log.errors if "Content Security Policy" in e or "page error" in e]
    assert violations == [], violations
