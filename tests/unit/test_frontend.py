"""The demo page and its client files as the API serves them: headers, types, no inline code."""

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from downloadjobs_api import frontend, schemas
from downloadjobs_api.frontend import CONTENT_SECURITY_POLICY, STATIC_DIR


@pytest.fixture
def client() -> TestClient:
    """The frontend on its own: it needs no service (the page calls the API from the browser).

    Its wiring into create_app is exercised by the browser tests, against the real API.
    """
    app = FastAPI()
    frontend.install(app)
    return TestClient(app)


def directives(header: str) -> dict[str, list[str]]:
    parsed = {}
    for part in header.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_the_page_is_served_at_the_root_with_a_strict_policy(client: TestClient) -> None:
    response = client.get("/", headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    # Ours, whatever other policy a middleware adds (browsers enforce every one they get).
    (header,) = [
        h
        for h in response.headers.get_list("content-security-policy")
        if "require-trusted-types-for" in h
    ]
    assert header == CONTENT_SECURITY_POLICY
    policy = directives(header)
    assert policy["default-src"] == ["'none'"]
    for name in ("script-src", "style-src", "connect-src"):
        assert policy[name] == ["'self'"], name
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["require-trusted-types-for"] == ["'script'"]
    assert "'unsafe-inline'" not in header
    assert "'unsafe-eval'" not in header
    assert response.headers["cache-control"] == "no-cache"


def test_the_page_has_no_inline_script_style_or_handler() -> None:
    """What the policy would block must not be there in the first place."""
    html = (STATIC_DIR / "index.html").read_text()
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all("src=" in tag for tag in scripts), scripts
    assert re.search(r"<script\b[^>]*>\s*[^<\s]", html) is None, "inline script"
    assert "<style" not in html and " style=" not in html
    assert re.search(r"\son[a-z]+=", html) is None, "inline event handler"


@pytest.mark.parametrize("name", ["downloadjobs.js", "app.js"])
def test_the_client_modules_are_served_as_javascript(client: TestClient, name: str) -> None:
    response = client.get(f"/static/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] in (
        "text/javascript",
        "application/javascript",
    )
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["etag"]
    assert response.text == (STATIC_DIR / name).read_text()


def test_unknown_static_files_are_404_and_not_in_the_api_description(
    client: TestClient,
) -> None:
    assert client.get("/static/nothing.js").status_code == 404
    assert client.get("/static/../app.py").status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert not any(path.startswith("/static") for path in paths)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (BROWSER_ACCEPT, "text/html"),
        ("text/html", "text/html"),
        ("application/json;q=0.5, text/*", "text/html"),
        (None, "application/json"),
        ("", "application/json"),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        ("text/html;q=0.5, application/json", "application/json"),
        ("text/html, application/json", "application/json"),  # a tie: JSON
        ("image/png", "application/json"),  # neither: the default
        ("text/html;q=2", "application/json"),  # an invalid weight: the range is ignored
        ("text/html;q=\u00b9", "application/json"),
        ("text/html;q=0, */*", "application/json"),
        (",,;;==/", "application/json"),
        ("\u00ff/\u00ff;q", "application/json"),
        ("text/html;level=1;q=0.9, application/json;q=0.1", "text/html"),
    ],
)
def test_negotiation_is_total(accept: str | None, expected: str) -> None:
    assert frontend.negotiate(accept, [frontend.JSON, frontend.HTML]) == expected


@pytest.mark.parametrize("accept", [None, "*/*", "application/json"])
def test_the_root_answers_anything_but_a_browser_with_a_json_index(
    client: TestClient, accept: str | None
) -> None:
    headers = {"Accept": accept} if accept else {}
    response = client.get("/", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert "Accept" in response.headers["vary"]
    index = schemas.ServiceIndex.model_validate(response.json())
    assert index.links.docs == "/docs" and index.links.openapi == "/openapi.json"
    assert index.links.health == "/health" and index.links.initiate == "/v1/download/initiate"
    assert index.links.jobs == "/v1/download/jobs"


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [(BROWSER_ACCEPT, "text/html"), ("application/json", "application/json")],
)
def test_head_of_the_root_answers_as_get_does(
    client: TestClient, accept: str, content_type: str
) -> None:
    get = client.get("/", headers={"Accept": accept})
    head = client.head("/", headers={"Accept": accept})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"].startswith(content_type)
    assert head.headers["content-length"] == get.headers["content-length"]


def test_the_root_is_documented_with_both_representations(client: TestClient) -> None:
    root = client.get("/openapi.json").json()["paths"]["/"]
    assert set(root) == {"get"}  # HEAD is implicit
    content = root["get"]["responses"]["200"]["content"]
    assert set(content) == {"application/json", "text/html"}
    assert "429" in root["get"]["responses"]
