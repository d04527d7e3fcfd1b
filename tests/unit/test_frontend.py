"""The demo page and its client files as the API serves them: headers, types, no inline code."""

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from downloadjobs_api import frontend
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


def test_the_page_is_served_at_the_root_with_a_strict_policy(client: TestClient) -> None:
    response = client.get("/")
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


def test_unknown_static_files_are_404_and_the_page_is_not_in_the_api_description(
    client: TestClient,
) -> None:
    assert client.get("/static/nothing.js").status_code == 404
    assert client.get("/static/../app.py").status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert "/" not in paths
    assert not any(path.startswith("/static") for path in paths)
