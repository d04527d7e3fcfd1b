"""The worker's own Kubernetes calls: credentials found as client-go finds them, two requests."""

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from downloadjobs_worker import kubeapi


def kubeconfig(user: dict[str, Any], cluster: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster or {"server": "https://k:6443/"}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }


def test_in_a_pod_the_service_account_files_are_used(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t1\n")
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    credentials = kubeapi.in_cluster(env, root=tmp_path)
    assert credentials.server == "https://[fd00::1]:443"
    assert credentials.ca_file == tmp_path / "ca.crt"
    assert credentials.bearer() == "t1"
    (tmp_path / "token").write_text("t2")  # the kubelet rotated it
    assert credentials.bearer() == "t2"


def test_a_kubeconfig_in_json_or_yaml_with_paths_relative_to_it(tmp_path: Path) -> None:
    import yaml

    config = kubeconfig(
        {"tokenFile": "token"},
        {"server": "https://k:6443/", "certificate-authority": "ca.crt"},
    )
    (tmp_path / "token").write_text("secret")
    for text in (json.dumps(config), yaml.safe_dump(config)):
        path = tmp_path / "config"
        path.write_text(text)
        credentials = kubeapi.discover({"KUBECONFIG": f"{path}:/elsewhere"})
        assert credentials.server == "https://k:6443"
        assert credentials.ca_file == tmp_path / "ca.crt"
        assert credentials.bearer() == "secret"


def test_inline_ca_and_token(tmp_path: Path) -> None:
    pem = "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n"
    cluster = {
        "server": "https://k",
        "certificate-authority-data": base64.b64encode(pem.encode()).decode(),
    }
    path = tmp_path / "config"
    path.write_text(json.dumps(kubeconfig({"token": "t"}, cluster)))
    credentials = kubeapi.from_kubeconfig(path)
    assert credentials.ca_data == pem and credentials.bearer() == "t"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "cannot read"),
        ("{not: [yaml", "cannot parse"),
        ("- a list", "not a mapping"),
        (json.dumps({**kubeconfig({"token": "t"}), "current-context": "y"}), "no context"),
        (json.dumps(kubeconfig({"client-certificate": "c.pem"})), "bearer token"),
        (json.dumps(kubeconfig({"token": "t"}, {"insecure-skip-tls-verify": True})), "no server"),
    ],
)
def test_an_unusable_kubeconfig_is_refused_with_a_reason(
    tmp_path: Path, text: str | None, message: str
) -> None:
    path = tmp_path / "config"
    if text is not None:
        path.write_text(text)
    with pytest.raises(kubeapi.ConfigError, match=message):
        kubeapi.from_kubeconfig(path)


class Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, Any]]] = []
    answer: ClassVar[tuple[int, dict[str, Any]]] = (200, {})

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.seen.append(
            {
                "method": self.command,
                "path": self.path,
                "headers": dict(self.headers),
                "body": json.loads(self.rfile.read(length)) if length else None,
            }
        )
        status, body = self.answer
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PATCH = _handle

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Recorder.seen = []
    Recorder.answer = (200, {"metadata": {"name": "j"}})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_a_get_and_a_merge_patch_of_the_status(server: str, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t1")
    api = kubeapi.DownloadJobApi(kubeapi.Credentials(server, token_file=tmp_path / "token"))
    assert api.get("ns", "j") == {"metadata": {"name": "j"}}
    (tmp_path / "token").write_text("t2")
    api.patch_status("ns", "j", {"status": {"progress": 5, "error": None}})
    get, patch = Recorder.seen
    assert get["method"] == "GET"
    assert get["path"] == "/apis/downloadjobs.dev/v1alpha1/namespaces/ns/downloadjobs/j"
    assert get["headers"]["Authorization"] == "Bearer t1"
    assert patch["method"] == "PATCH" and patch["path"].endswith("/j/status")
    assert patch["headers"]["Content-Type"] == "application/merge-patch+json"
    assert patch["headers"]["Authorization"] == "Bearer t2"
    assert patch["body"] == {"status": {"progress": 5, "error": None}}


def test_an_error_carries_the_status_and_the_api_servers_message(server: str) -> None:
    Recorder.answer = (403, {"kind": "Status", "message": "patch is forbidden"})
    api = kubeapi.DownloadJobApi(kubeapi.Credentials(server, token="t"))
    with pytest.raises(kubeapi.ApiError) as caught:
        api.patch_status("ns", "j", {"status": {}})
    assert caught.value.status == 403 and caught.value.reason == "patch is forbidden"
    Recorder.answer = (503, {"not": "a status"})
    with pytest.raises(kubeapi.ApiError) as caught:
        api.get("ns", "j")
    assert caught.value.status == 503 and caught.value.reason == "Service Unavailable"


def test_the_worker_does_not_import_the_kubernetes_package() -> None:
    """About 0.3 s and 40 MiB on every pod's start: the reason this module exists."""
    import subprocess
    import sys

    code = "import sys, downloadjobs_worker.main; print('kubernetes' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
