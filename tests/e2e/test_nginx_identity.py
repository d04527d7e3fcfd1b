"""
The shipped nginx configuration never passes a client's own identity header: run
by the real nginx in front of a server that echoes the headers it receives, a
client's ``X-Forwarded-User`` (once, twice, comma-joined) never reaches the
upstream, and ``X-Forwarded-For`` ends with the address nginx saw.
"""

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.nginx import running_nginx


class Echo(http.server.BaseHTTPRequestHandler):
    """Answers every GET with the request's headers, as a JSON list of pairs."""

    def do_GET(self) -> None:
        body = json.dumps([[k.lower(), v] for k, v in self.headers.items()]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    prefix = Path(tmp_path_factory.mktemp("nginx-identity"))
    address = f"127.0.0.1:{upstream.server_address[1]}"
    try:
        with running_nginx(prefix, address, access_log=False) as url:
            yield url
    finally:
        upstream.shutdown()


@pytest.mark.parametrize(
    "sent",
    [
        [("X-Forwarded-User", "carol")],
        [("X-Forwarded-User", "carol"), ("X-Forwarded-User", "mallory")],
        [("x-forwarded-user", "carol,mallory")],
    ],
    ids=["once", "twice", "joined"],
)
def test_a_clients_identity_header_never_reaches_the_api(
    proxy: str, sent: list[tuple[str, str]]
) -> None:
    for path in ("/v1/download/jobs/x", "/health"):
        received = httpx.get(f"{proxy}{path}", headers=[*sent, ("X-Forwarded-For", "6.6.6.6")])
        assert received.status_code == 200
        headers = received.json()
        assert not [v for k, v in headers if k == "x-forwarded-user"], headers
        forwarded = [v for k, v in headers if k == "x-forwarded-for"]
        assert len(forwarded) == 1 and forwarded[0].endswith("127.0.0.1"), forwarded
