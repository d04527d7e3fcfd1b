"""
Issue 15's findings, one test each: identities that cannot be borrowed, client
addresses only through trusted proxies, ``anonymous`` reserved, authentication
before parameters, the long-poll cap, unpredictable idempotent names and 404s that
do not tell a missing job from another owner's.
"""

import asyncio
import hashlib
import json
import logging
import time
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from downloadjobs_api.idempotency import idempotent_name
from downloadjobs_api.poller import Poller
from downloadjobs_api.settings import ApiSettings
from tests.unit.conftest import MakeClient
from tests.unit.fakes import FakeCustomObjects

USER = "X-Auth-Request-User"


def start(client: TestClient, headers: Any = None, ids: list[int] | None = None) -> Any:
    return client.post("/v1/download/initiate", json={"file_ids": ids or [70000]}, headers=headers)


# -- header mode: an identity nobody can borrow ------------------------------------------------


def test_a_repeated_or_joined_identity_header_is_401(make_client: MakeClient) -> None:
    client, api = make_client(auth_mode="header", identity_header=USER)
    carol = start(client, {USER: "carol"}).json()["jobId"]
    borrowed = [
        [(USER, "carol"), (USER, "mallory")],  # first value won before
        [(USER, "mallory"), (USER, "carol")],
        [(USER, "carol,mallory")],  # what a proxy that appends makes of a client's own
        [(USER, "carol, mallory")],
    ]
    for headers in borrowed:
        for response in (
            client.get(f"/v1/download/jobs/{carol}", headers=headers),
            start(client, headers),
        ):
            assert response.status_code == 401, (headers, response.text)
    assert len(api.created) == 1


def test_the_proxy_secret_is_required_when_configured(
    make_client: MakeClient, tmp_path: Any
) -> None:
    secret = tmp_path / "proxy-secret"
    secret.write_text("s3cret-from-a-secret\n")
    client, _ = make_client(auth_mode="header", identity_header=USER, proxy_secret_file=secret)
    assert start(client, {USER: "carol"}).status_code == 401
    assert start(client, {USER: "carol", "X-Proxy-Secret": "guess"}).status_code == 401
    both = [(USER, "carol"), ("X-Proxy-Secret", "s3cret-from-a-secret")]
    assert start(client, [*both, ("X-Proxy-Secret", "s3cret-from-a-secret")]).status_code == 401
    assert start(client, both).status_code == 202


def test_a_repeated_authorization_header_is_401(make_client: MakeClient) -> None:
    client, _ = make_client(auth_mode="token", tokens={"t-a": "alice", "t-b": "bob"})
    twice = [("Authorization", "Bearer t-a"), ("Authorization", "Bearer t-b")]
    assert start(client, twice).status_code == 401
    assert start(client, {"Authorization": "Bearer t-a"}).status_code == 202


# -- anonymous is none mode's ------------------------------------------------------------------


def test_anonymous_is_reserved_outside_none_mode(make_client: MakeClient) -> None:
    client, api = make_client()  # none mode: jobs of "anonymous"
    job_id = start(client).json()["jobId"]
    assert api.created[job_id]["spec"]["owner"] == "anonymous"

    header, _ = make_client(api=api, auth_mode="header", identity_header=USER)
    for name in ("anonymous", "Anonymous", " anonymous "):
        assert header.get(f"/v1/download/jobs/{job_id}", headers={USER: name}).status_code == 401
        assert header.get("/v1/download/jobs", headers={USER: name}).status_code == 401
    for tokens in ({"t": "anonymous"}, {"t": "ANONYMOUS"}):
        with pytest.raises(ValueError, match="reserved"):
            make_client(auth_mode="token", tokens=tokens)


# -- client addresses: through configured proxies only -------------------------------------------


@pytest.mark.parametrize("value", ["*", "10.0.0.1,*", '["*"]', "10.0.0.0/8, *", "proxy.local"])
def test_forwarded_allow_ips_refuses_any_client(value: str) -> None:
    with pytest.raises(ValidationError):
        ApiSettings(forwarded_allow_ips=value)


def test_forwarded_allow_ips_reads_addresses_and_networks() -> None:
    settings = ApiSettings(forwarded_allow_ips="10.0.0.1, 10.1.0.0/16, ::1")
    assert settings.forwarded_allow_ips == ["10.0.0.1", "10.1.0.0/16", "::1"]
    assert ApiSettings().forwarded_allow_ips == ["127.0.0.1"]


def test_a_client_cannot_choose_its_address_behind_a_trusted_proxy(
    make_client: MakeClient,
) -> None:
    """The client is the last address the proxy did not add: a spoofed prefix changes nothing."""
    client, _ = make_client(
        client=("10.0.0.1", 40000), forwarded_allow_ips="10.0.0.0/8", initiate_rate="2/minute"
    )

    def via_proxy(forwarded_for: str) -> int:
        return int(start(client, {"X-Forwarded-For": forwarded_for}).status_code)

    spoofed = [f"198.51.100.{n}, 127.0.0.1, 203.0.113.7" for n in range(3)]
    assert [via_proxy(f) for f in spoofed] == [202, 202, 429], "one client, one count"
    assert via_proxy("203.0.113.8") == 202, "another client behind the proxy counts apart"

    direct, _ = make_client(client=("192.0.2.5", 40000), initiate_rate="2/minute")
    answers = [start(direct, {"X-Forwarded-For": f"198.51.100.{n}"}) for n in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 429], "no proxy: the header is ignored"


# -- authentication first; the long-poll cap -----------------------------------------------------


def test_bogus_credentials_are_401_before_any_parameter_is_read(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = make_client(auth_mode="token", tokens={"t": "alice"}, poll_rate="1000/minute")
    job_id = start(client, {"Authorization": "Bearer t"}).json()["jobId"]
    caplog.set_level(logging.INFO)
    for wait in ["9" * 4301, "²", "-1", "x"]:
        for headers in ({"Authorization": "Bearer bogus"}, {}):
            response = client.get(
                f"/v1/download/jobs/{job_id}",
                params={"waitSeconds": wait},
                headers={**headers, "Prefer": f"wait={wait}".encode("latin-1")},
            )
            assert response.status_code == 401, response.text
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks in the log"


@pytest.mark.parametrize(
    ("method", "path", "request_args"),
    [
        ("GET", "/v1/download/jobs/NOT-A-JOB-ID", {}),
        ("GET", "/v1/download/jobs?limit=abc&cursor=%25", {}),
        ("POST", "/v1/download/initiate", {"content": b"{not json"}),
        ("POST", "/v1/download/initiate", {"content": b'{"file_ids": "x"}'}),
        ("POST", "/v1/download/check", {"content": b"{not json"}),
        ("POST", "/v1/download/jobs/x/retry", {"content": b"x" * 1000}),
        ("DELETE", "/v1/download/jobs/UPPER", {}),
        ("PUT", "/v1/download/jobs/x", {}),
        ("GET", "/v1/nothing-here", {}),
    ],
)
def test_every_v1_request_without_credentials_is_401_before_it_is_parsed(
    make_client: MakeClient, method: str, path: str, request_args: dict[str, Any]
) -> None:
    for settings in (
        {"auth_mode": "token", "tokens": {"t": "alice"}},
        {"auth_mode": "header", "identity_header": USER},
    ):
        client, api = make_client(**settings)
        headers = {"Content-Type": "application/json", "Authorization": "Bearer bogus"}
        response = client.request(method, path, headers=headers, **request_args)
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "UNAUTHENTICATED"
        assert response.json()["requestId"] == response.headers["x-request-id"]
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert api.created == {}


async def test_an_owner_holds_at_most_its_cap_of_long_polls(make_client: MakeClient) -> None:
    client, _ = make_client(max_long_polls_per_owner=2)
    job_id = start(client).json()["jobId"]
    poller: Poller = client.app.state.poller  # type: ignore[attr-defined]

    async def poll(holder: str) -> tuple[float, str | None]:
        began = time.monotonic()
        answer = await poller.answer(job_id, "anonymous", None, 3, holder=holder)
        return time.monotonic() - began, answer.headers.get("preference-applied")

    polls = [asyncio.create_task(poll("alice")) for _ in range(2)]
    await asyncio.sleep(0.2)
    assert poller.waiting == {"alice": 2}
    extra, applied = await poll("alice")
    assert extra < 0.5 and applied is None, "over the cap: answered at once, no wait applied"
    other = asyncio.create_task(poll("bob"))  # another owner has a cap of its own
    await asyncio.sleep(0.2)
    assert poller.waiting == {"alice": 2, "bob": 1}
    for waited, applied in await asyncio.gather(*polls, other):
        assert waited >= 2.5 and applied == "wait=3"
    assert poller.waiting == {}


def test_the_connection_cap_is_handed_to_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from downloadjobs_cli import main

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: seen.update(kwargs))
    monkeypatch.setenv("DOWNLOADJOBS_API_MAX_CONNECTIONS", "123")
    assert main(["api"]) == 0
    assert seen["limit_concurrency"] == 123
    assert seen["proxy_headers"] is False, "the app reads X-Forwarded-* itself"


# -- names nobody can predict, 404s that tell nothing --------------------------------------------


def test_idempotent_names_are_a_keyed_hmac(make_client: MakeClient) -> None:
    assert idempotent_name(b"k1", "alice", "order-1") == idempotent_name(b"k1", "alice", "order-1")
    assert idempotent_name(b"k1", "alice", "order-1") != idempotent_name(b"k2", "alice", "order-1")
    public = str(uuid.uuid5(uuid.UUID("6f1c7e0a-4a53-4c1e-9a55-2b8f0f7d9c11"), "alice\norder-1"))
    assert idempotent_name(b"k1", "alice", "order-1") != public
    uuid.UUID(idempotent_name(b"k1", "alice", "order-1"))  # still a UUID

    one, _ = make_client(idempotency_secret="secret-1")
    two, _ = make_client(idempotency_secret="secret-1")
    other, _ = make_client(idempotency_secret="secret-2")
    key = {"Idempotency-Key": "order-1"}
    names = [start(c, key).json()["jobId"] for c in (one, two, other)]
    assert names[0] == names[1], "replicas sharing the Secret name a job alike"
    assert names[2] != names[0]
    expected = hashlib.sha256(b"")  # the name is not derived from a public constant
    assert names[0] != str(uuid.UUID(bytes=expected.digest()[:16]))


class CountingCustomObjects(FakeCustomObjects):
    """Counts GETs: each is a round trip to the API server, which a timer could see."""

    def __init__(self) -> None:
        super().__init__()
        self.gets = 0

    def get_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        self.gets += 1
        return super().get_namespaced_custom_object(*args)


def test_a_missing_job_and_another_owners_answer_alike(make_client: MakeClient) -> None:
    """
    Alike in what they say and in the work behind them (no round trip for either once
    a missing id is remembered), so neither the answer nor its time tells them apart.
    Compared by work done, not by a stopwatch: timings belong in benchmarks.
    """
    api = CountingCustomObjects()
    client, _ = make_client(api=api, auth_mode="token", tokens={"ta": "alice", "tb": "bob"})
    theirs = start(client, {"Authorization": "Bearer ta"}).json()["jobId"]
    missing = str(uuid.uuid4())
    bob = {"Authorization": "Bearer tb"}

    def answers(job_id: str) -> tuple[int, set[tuple[int, str, str]]]:
        before, seen = api.gets, set()
        for _ in range(20):
            response = client.get(f"/v1/download/jobs/{job_id}", headers=bob)
            headers = ",".join(sorted(h for h in response.headers if h != "x-request-id"))
            body = {k: v for k, v in response.json().items() if k != "requestId"}
            seen.add((response.status_code, json.dumps(body).replace(job_id, "ID"), headers))
        return api.gets - before, seen

    first, _ = answers(missing)
    assert first == 1, "a missing id is asked of the API server once, then remembered"
    mine_gets, mine = answers(theirs)
    again_gets, again = answers(missing)
    assert mine_gets == again_gets == 0, "neither costs a round trip now"
    assert len(mine) == 1 and mine == again, "the same answer, headers included"
    assert next(iter(mine))[0] == 404


# -- the docs: served from here, under the same policy -------------------------------------------


def test_swagger_ui_is_served_by_the_api_from_a_pinned_package(make_client: MakeClient) -> None:
    import re
    from pathlib import Path

    client, _ = make_client()
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    html = page.text
    assert not re.search(r"<script>|<script [^>]*>[^<]|<style|\bon\w+=", html), "nothing inline"
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(s.startswith("/") and not s.startswith("//") for s in sources)
    for source in sources:
        asset = client.get(source)
        assert asset.status_code == 200, source
        assert asset.headers["content-type"].split(";")[0] in ("text/css", "text/javascript")
    assert "SwaggerUIBundle" in client.get("/static/docs.js").text
    assert client.get("/redoc").status_code == 404, "ReDoc would load from a CDN"
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert '"swagger-ui-bundle-v2==' in pyproject, "the browser's code is pinned"
