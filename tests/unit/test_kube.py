"""The shared Kubernetes client helpers."""

import http.server
import threading
from collections.abc import Iterator

import pytest
import urllib3

from downloadjobs import kube


class Answer(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the API server

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"kind": "Status"}' * 100
        self.send_response(201)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def test_an_answer_read_through_gives_its_connection_back(server: str) -> None:
    pool = urllib3.PoolManager(maxsize=4)
    for _ in range(5):
        kube.read_through(pool.request("POST", server, body=b"{}", preload_content=False))
    assert pool.connection_from_url(server).num_connections == 1, "one connection, reused"

    unread = urllib3.PoolManager(maxsize=4)
    for _ in range(3):
        unread.request("POST", server, body=b"{}", preload_content=False)
    assert unread.connection_from_url(server).num_connections == 3, "what it guards against"
