"""
The shipped nginx configuration never passes a client's own identity header: run
by the real nginx in front of a server that echoes the headers it receives, a
client's ``X-Forwarded-User`` (once, twice, comma-joined) never reaches the
upstream, and ``X-Forwarded-For`` ends with the address nginx saw.
"""

import http.server
import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from downloadjobs_embedded.stack import free_port
from downloadjobs_embedded.supervisor import terminate
from tests.e2e.test_api_nginx import nginx_binary, shipped_config


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
    binary = nginx_binary()
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    prefix = Path(tmp_path_factory.mktemp("nginx-identity"))
    port = free_port()
    address = f"127.0.0.1:{upstream.server_address[1]}"
    (prefix / "downloadjobs.conf").write_text(shipped_config(port, address))
    temp = {name: prefix / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    (prefix / "nginx.conf").write_text(
        f"""
daemon off;
master_process off;
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log stderr warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
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
        for _ in range(100):
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.HTTPError:
                threading.Event().wait(0.1)
        yield url
    finally:
        terminate(process)
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
