"""The pure parts of a cheap poll: ETag matching, the suggested interval, the ETA, limits."""

import datetime
import gc
import os
import tracemalloc
from pathlib import Path

import pytest

from downloadjobs import model
from downloadjobs_api import polling
from downloadjobs_api.ratelimit import FixedWindow

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def test_etags_are_weak_and_compared_weakly() -> None:
    tag = polling.etag({"metadata": {"name": "j", "resourceVersion": "42"}})
    assert tag == 'W/"j.42"'
    assert polling.matches('W/"j.42"', tag)
    assert polling.matches('"j.42"', tag), "weak comparison ignores W/"
    assert polling.matches('W/"x", W/"j.42"', tag)
    assert polling.matches("*", tag)
    assert not polling.matches('W/"j.41"', tag)
    assert not polling.matches(None, tag)


def test_eta_from_bytes_over_time() -> None:
    status = model.DownloadJobStatus(
        phase=model.Phase.PROCESSING, started_at=T0, bytes_done=25, bytes_total=100
    )
    assert polling.eta_seconds(status, T0 + datetime.timedelta(seconds=10)) == 30
    assert polling.eta_seconds(status.model_copy(update={"bytes_done": 0}), T0) is None
    queued = status.model_copy(update={"phase": model.Phase.QUEUED})
    assert polling.eta_seconds(queued, T0 + datetime.timedelta(seconds=10)) is None


@pytest.mark.parametrize(
    ("phase", "position", "eta", "expected"),
    [
        (model.Phase.QUEUED, None, None, 2),
        (model.Phase.QUEUED, 5, None, 10),
        (model.Phase.QUEUED, 500, None, 30),
        (model.Phase.PROCESSING, None, None, 2),
        (model.Phase.PROCESSING, None, 0, 1),
        (model.Phase.PROCESSING, None, 30, 10),
        (model.Phase.PROCESSING, None, 3600, 30),
        (model.Phase.COMPLETED, None, None, None),
        (model.Phase.FAILED, None, None, None),
    ],
)
def test_retry_after_follows_the_state(
    phase: model.Phase, position: int | None, eta: int | None, expected: int | None
) -> None:
    assert polling.retry_after(phase, position, eta) == expected


def test_prefer_wait() -> None:
    assert polling.parse_prefer_wait("wait=10") == 10
    assert polling.parse_prefer_wait("respond-async, wait=5") == 5
    assert polling.parse_prefer_wait("return=minimal") is None
    assert polling.parse_prefer_wait("wait=abc") is None
    assert polling.parse_prefer_wait(None) is None
    assert polling.parse_prefer_wait("wait=\u00b9") is None  # superscript one: isdigit, not int


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0),
        ("25", 25),
        ("007", 7),
        ("", None),
        ("\u00b9", None),  # superscript one: str.isdigit() says yes, int() refuses it
        ("\u0663", None),  # Arabic-Indic three: int() takes it, no HTTP client means it
        ("1" * 5000, None),  # int() refuses over 4300 digits
        ("-1", None),
        ("1.5", None),
        (" 5", None),
    ],
)
def test_parse_seconds_is_total(text: str, seconds: int | None) -> None:
    assert polling.parse_seconds(text) == seconds


def test_fixed_window() -> None:
    window = FixedWindow("2/minute")
    assert window.hit("a", 60.0) == (True, 1, 120)
    assert window.hit("a", 61.0) == (True, 0, 120)
    assert window.hit("a", 62.0) == (False, 0, 120)
    assert window.hit("b", 62.0)[0], "each client has its own count"
    assert window.hit("a", 120.0) == (True, 1, 180), "a new window starts afresh"
    assert FixedWindow("10 per 5 seconds").seconds == 5
    with pytest.raises(ValueError, match="rate"):
        FixedWindow("lots")


@pytest.mark.parametrize(
    "status",
    [
        None,
        {"phase": "Queued", "queuePosition": 4},
        {"phase": "Processing", "startedAt": "2026-01-01T00:00:00Z"},
        {
            "phase": "Processing",
            "startedAt": "2026-01-01T00:00:00Z",
            "bytesDone": 10,
            "bytesTotal": 100,
        },
        {"phase": "Completed"},
        {"phase": "Bogus"},
    ],
)
def test_the_304_path_suggests_what_the_200_path_does(status: dict[str, object] | None) -> None:
    body = {"metadata": {"name": "j"}, "status": status}
    now = T0 + datetime.timedelta(seconds=40)
    parsed = model.parse_status(body) if status and status.get("phase") != "Bogus" else None
    phase = (parsed.phase if parsed else None) or model.Phase.QUEUED
    eta = polling.eta_seconds(parsed, now) if parsed else None
    expected = polling.retry_after(phase, parsed.queue_position if parsed else None, eta)
    assert polling.retry_after_of(body, now) == expected


def test_fixed_window_keeps_digests_of_a_bounded_number_of_keys() -> None:
    window = FixedWindow("2/minute", max_keys=3)
    long_key = "ip:" + "x" * 15_000
    for key in ("a", "b", long_key):
        window.hit(key, 60.0)
    assert len(window) == 3 and long_key in window
    assert all(len(stored) == 16 for stored in window._counts), "digests, never the keys"
    window.hit("a", 61.0)  # "a" is now the most recently seen: "b" goes first
    window.hit("d", 61.0)
    assert len(window) == 3
    assert "b" not in window and "a" in window
    assert window.hit("a", 62.0) == (False, 0, 120), "a kept client keeps its count"
    for n in range(1000):
        window.hit(f"spoofed-{n}", 63.0)
    assert len(window) == 3


def test_made_up_keys_cannot_grow_the_table_past_its_bound() -> None:
    window = FixedWindow("10/minute")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(100_000):
            window.hit(f"ip:198.51.100.{n}, " + "x" * 200, 61.0)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(window) == window.max_keys
    assert grown <= 10 * 2**20, f"{grown / 2**20:.1f} MiB"


def _rss() -> int:
    """This process's resident memory now, in bytes (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def test_100000_spoofed_keys_grow_the_resident_memory_by_at_most_20_mib() -> None:
    """
    The attack the security review ran: distinct 15 KB client keys, one request each,
    against both tables (polls and writes). What the process holds, not what Python
    traces: RSS, read from /proc.
    """
    polls, writes = FixedWindow("10/minute"), FixedWindow("10/minute")
    pad = "x" * 15_000
    gc.collect()
    before = _rss()
    for n in range(100_000):
        key = f"ip:198.51.100.{n}, {pad}"
        polls.hit(key, 61.0)
        writes.hit(key, 61.0)
    gc.collect()
    grown = _rss() - before
    assert len(polls) == len(writes) == polls.max_keys
    assert grown <= 20 * 2**20, f"{grown / 2**20:.1f} MiB"
