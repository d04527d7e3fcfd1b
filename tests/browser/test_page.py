"""
The demo page in a real Chromium against the dev stack: a person's five situations.

Each test types file ids and clicks Download like a person would, and watches the
page's own DOM: the job's card (``li[data-job-id]``) carries ``data-status``, a
``<progress>`` bar and a ``.label``. The page polls on its real schedule (2 s, growing
towards 5 s); the stack's worker takes 1.5-2 s per file, so a job of 6 files runs long
enough to watch.
"""

import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
from playwright.sync_api import Locator, Page, expect

from downloadjobs_embedded import s3server
from downloadjobs_embedded.stack import Stack
from tests.browser.conftest import SCREENSHOT, PageLog

SIX_FILES = list(range(70000, 70006))
JOB_WAIT_MS = 120_000  # a job's whole life, on two cores shared with other tests

#: Records every value the page gives any progress bar (MutationObserver; runs outside the CSP).
RECORD_PROGRESS = """() => {
  window.__progress = [];
  new MutationObserver((records) => {
    for (const record of records) {
      if (record.target instanceof HTMLProgressElement) window.__progress.push(record.target.value);
    }
  }).observe(document.getElementById('jobs'), {attributes: true, subtree: true,
                                                attributeFilter: ['value']});
}"""


def open_page(page: Page, stack: Stack) -> None:
    page.goto(f"{stack.api_url}/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")


def new_card(page: Page, action: Callable[[], None]) -> Locator:
    """Do ``action`` (a click that starts a job); the card of the job it started, by its id."""
    before = page.eval_on_selector_all("#jobs > li", "cards => cards.map(c => c.dataset.jobId)")
    action()
    page.wait_for_function(
        "(before) => { const top = document.querySelector('#jobs > li');"
        " return top !== null && !before.includes(top.dataset.jobId); }",
        arg=before,
    )
    created = page.locator("#jobs > li").first.get_attribute("data-job-id")
    return page.locator(f"li[data-job-id='{created}']")


def start(page: Page, ids: list[int]) -> Locator:
    """Type the ids, click Download; the new job's card."""
    page.fill("#file-ids", ", ".join(map(str, ids)))
    return new_card(page, page.get_by_role("button", name="Download").click)


def job_id(card: Locator) -> str:
    value = card.get_attribute("data-job-id")
    assert value
    return value


def wait_processing(card: Locator, page: Page) -> int:
    """Wait until the card shows a running job part-way through; its progress."""
    expect(card).to_have_attribute("data-status", "processing", timeout=JOB_WAIT_MS)
    page.wait_for_function(
        "(id) => { const bar = document.querySelector(`li[data-job-id='${id}'] progress`);"
        " return bar && bar.value > 0 && bar.value < 100; }",
        arg=job_id(card),
        timeout=JOB_WAIT_MS,
    )
    return int(card.locator("progress").evaluate("bar => bar.value"))


def screenshot(page: Page, card: Locator) -> None:
    """The page mid-download, for the README: taken now, retaken further along if it gets there."""
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOT, full_page=True)
    further = page.wait_for_function(
        "(id) => { const card = document.querySelector(`li[data-job-id='${id}']`);"
        " const bar = card.querySelector('progress');"
        " if (card.dataset.status !== 'processing') return 'done';"
        " return bar.value >= 25 ? 'further' : false; }",
        arg=job_id(card),
        timeout=JOB_WAIT_MS,
    )
    if further.json_value() == "further":
        page.screenshot(path=SCREENSHOT, full_page=True)


def check_bundle(path: Path, ids: list[int]) -> None:
    with zipfile.ZipFile(path) as bundle:
        assert bundle.testzip() is None
        assert bundle.namelist() == [f"{i}.zip" for i in ids]
        for i in ids:
            assert bundle.read(f"{i}.zip") == s3server.sample_content(i)


def test_download_shows_progress_and_delivers_the_zip(page: Page, stack: Stack) -> None:
    open_page(page, stack)
    page.evaluate(RECORD_PROGRESS)
    with page.expect_download(timeout=JOB_WAIT_MS) as download_info:
        card = start(page, SIX_FILES)
        wait_processing(card, page)
        expect(card.locator(".label")).to_contain_text("Preparing your download…")
        screenshot(page, card)
    download = download_info.value
    assert download.suggested_filename == f"download-{job_id(card)}.zip"
    check_bundle(Path(download.path()), SIX_FILES)

    expect(card).to_have_attribute("data-status", "completed")
    expect(card.locator(".label")).to_have_text("Download ready")
    seen: list[int] = page.evaluate("window.__progress")
    intermediate = sorted({v for v in seen if 0 < v < 100})
    assert len(intermediate) >= 2, seen
    assert seen[-1] == 100, seen


def test_a_reload_resumes_polling_from_local_storage(
    page: Page, stack: Stack, page_log: PageLog
) -> None:
    open_page(page, stack)
    card = start(page, SIX_FILES)
    job = job_id(card)
    wait_processing(card, page)
    stored = page.evaluate("JSON.parse(localStorage.getItem('downloadjobs.jobs'))")
    assert [j["status"] for j in stored if j["jobId"] == job] == ["processing"]

    before_reload = len(page_log.requests)
    with page.expect_download(timeout=JOB_WAIT_MS) as download_info:
        page.reload()
        card = page.locator(f"li[data-job-id='{job}']")
        expect(card).to_have_attribute("data-status", "completed", timeout=JOB_WAIT_MS)
    after = page_log.requests[before_reload:]
    reloaded = after.index(("GET", f"{stack.api_url}/"))
    polls = [r for r in after[reloaded:] if r == ("GET", f"{stack.api_url}/v1/download/jobs/{job}")]
    assert polls, "no poll after the reload"
    check_bundle(Path(download_info.value.path()), SIX_FILES)
    stored = page.evaluate("JSON.parse(localStorage.getItem('downloadjobs.jobs'))")
    assert [j["status"] for j in stored if j["jobId"] == job] == ["completed"]


def test_all_files_missing_shows_the_reason_and_retry_starts_a_new_job(
    page: Page, stack: Stack
) -> None:
    missing = [99981, 99982]
    open_page(page, stack)
    card = start(page, missing)
    first = job_id(card)
    expect(card).to_have_attribute("data-status", "failed", timeout=JOB_WAIT_MS)
    reason = httpx.get(f"{stack.api_url}/v1/download/jobs/{first}").json()["error"]
    assert reason["reason"] == "AllFilesMissing"
    expect(card.locator(".label")).to_have_text(f"Failed: {reason['message']}")
    expect(card.locator(".reason")).to_have_text("AllFilesMissing")
    expect(card.get_by_role("button", name="Cancel")).to_be_hidden()

    retried = new_card(page, card.get_by_role("button", name="Retry").click)
    second = job_id(retried)
    assert second != first
    assert httpx.get(f"{stack.api_url}/v1/download/jobs/{second}").json()["totalFileIds"] == 2
    expect(retried).to_have_attribute("data-status", "failed", timeout=JOB_WAIT_MS)


def test_cancel_shows_cancelled_and_stops_polling(
    page: Page, stack: Stack, page_log: PageLog
) -> None:
    open_page(page, stack)
    card = start(page, SIX_FILES)
    job = job_id(card)
    wait_processing(card, page)

    card.get_by_role("button", name="Cancel").click()
    expect(card.locator(".label")).to_have_text("Cancelled")
    expect(card).to_have_attribute("data-status", "cancelled")
    assert ("DELETE", f"{stack.api_url}/v1/download/jobs/{job}") in page_log.requests
    after_cancel = page_log.count(job)
    # Longer than the longest wait between two polls (5 s): a live poller would have asked.
    page.wait_for_timeout(7_000)
    assert page_log.count(job) == after_cancel, page_log.requests[-5:]
    expect(card.get_by_role("button", name="Retry")).to_be_visible()

    deadline = time.monotonic() + 60
    while httpx.get(f"{stack.api_url}/v1/download/jobs/{job}").json()["status"] != "cancelled":
        assert time.monotonic() < deadline, "the server never cancelled the job"
        time.sleep(0.5)


def test_an_api_outage_shows_reconnecting_then_the_job_finishes(page: Page, stack: Stack) -> None:
    ids = list(range(70010, 70018))
    open_page(page, stack)
    with page.expect_download(timeout=JOB_WAIT_MS) as download_info:
        card = start(page, ids)
        wait_processing(card, page)
        stack.stop("api")
        try:
            expect(card).to_have_attribute("data-status", "reconnecting", timeout=30_000)
            expect(card.locator(".label")).to_contain_text("Reconnecting")
        finally:
            stack.start("api")
            stack.wait_http(f"{stack.api_url}/health", "api")
        expect(card).to_have_attribute("data-status", "completed", timeout=JOB_WAIT_MS)
    check_bundle(Path(download_info.value.path()), ids)


def test_the_policy_blocks_inline_script_and_html_injection(
    page: Page, stack: Stack, page_log: PageLog
) -> None:
    """The CSP is really in force: what an XSS would try is refused by the browser."""
    open_page(page, stack)
    outcome = page.evaluate(
        """() => {
          const script = document.createElement('script');
          try { script.textContent = 'window.injected = true'; } catch (e) { return 'refused'; }
          document.body.appendChild(script);
          return window.injected === true ? 'ran' : 'blocked';
        }"""
    )
    assert outcome in ("refused", "blocked")
    html_sink = page.evaluate(
        "() => { try { document.body.innerHTML = '<b>x</b>'; return 'accepted'; }"
        " catch (e) { return e.name; } }"
    )
    assert html_sink == "TypeError", "Trusted Types must refuse a string for innerHTML"
    page_log.errors.clear()  # the refusals above are the expected violations
