"""
The worker's two calls to the Kubernetes API: read its DownloadJob, merge-patch its
status, with the pod's service-account token, over the urllib3 that boto3 loads anyway.

The ``kubernetes`` package costs about 0.3 s of CPU and 40 MiB to import, more than
everything else the worker loads before its first S3 request, and every download
pays it; the worker needs none of its models, watches or config plugins. The
credentials are found the way client-go finds them: in a pod, the service-account
files and ``KUBERNETES_SERVICE_HOST``; elsewhere the current context of
``$KUBECONFIG`` or ``~/.kube/config``, with a bearer token (``token`` or
``tokenFile``) — any other kind of user is refused with a message saying so.
"""

import base64
import json
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3

from downloadjobs import contract

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class ApiError(Exception):
    """The API server answered with an error status."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class ConfigError(Exception):
    """No usable credentials: a message a person can act on."""


@dataclass(frozen=True)
class Credentials:
    server: str
    token: str | None = None
    token_file: Path | None = None
    ca_file: Path | None = None
    ca_data: str | None = None
    verify: bool = True

    def bearer(self) -> str | None:
        """The token now: a file is read again each time, as the kubelet rotates it."""
        if self.token_file is not None:
            return self.token_file.read_text().strip()
        return self.token


def in_cluster(env: dict[str, str], root: Path = SERVICE_ACCOUNT) -> Credentials:
    host, port = env["KUBERNETES_SERVICE_HOST"], env.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return Credentials(
        server=f"https://{host}:{port}", token_file=root / "token", ca_file=root / "ca.crt"
    )


def from_kubeconfig(path: Path) -> Credentials:
    """The current context's cluster and user; paths in the file are relative to it."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read kubeconfig {path}: {exc}") from exc
    try:
        config = json.loads(text)  # the node agent writes JSON, which is YAML too
    except ValueError:
        import yaml  # a person's kubeconfig: the YAML parser only when needed

        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"cannot parse kubeconfig {path}: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"kubeconfig {path} is not a mapping")

    def named(kind: str, name: str) -> dict[str, Any]:
        for item in config.get(f"{kind}s") or []:
            if isinstance(item, dict) and item.get("name") == name:
                found: dict[str, Any] = item.get(kind) or {}
                return found
        raise ConfigError(f"kubeconfig {path} has no {kind} named {name!r}")

    context = named("context", str(config.get("current-context") or ""))
    cluster = named("cluster", str(context.get("cluster") or ""))
    user = named("user", str(context.get("user") or ""))
    if not cluster.get("server"):
        raise ConfigError(f"kubeconfig {path}: the cluster has no server")
    if not (user.get("token") or user.get("tokenFile")):
        raise ConfigError(
            f"kubeconfig {path}: the worker authenticates with a bearer token "
            "(`token` or `tokenFile`) only; this user has none"
        )

    def relative(value: Any) -> Path | None:
        return path.parent / str(value) if value else None

    ca_data = cluster.get("certificate-authority-data")
    return Credentials(
        server=str(cluster["server"]).rstrip("/"),
        token=user.get("token"),
        token_file=relative(user.get("tokenFile")),
        ca_file=relative(cluster.get("certificate-authority")),
        ca_data=base64.b64decode(ca_data).decode() if ca_data else None,
        verify=not cluster.get("insecure-skip-tls-verify", False),
    )


def discover(env: dict[str, str] | None = None) -> Credentials:
    env = dict(os.environ) if env is None else env
    if env.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster(env)
    first = (env.get("KUBECONFIG") or "").split(os.pathsep)[0]
    return from_kubeconfig(Path(first) if first else Path.home() / ".kube" / "config")


class DownloadJobApi:
    """GET and status merge-patch of DownloadJobs, nothing else."""

    def __init__(self, credentials: Credentials, pool_size: int = 4) -> None:
        self._credentials = credentials
        tls: dict[str, Any] = {}
        if credentials.server.startswith("https:"):
            context = ssl.create_default_context(
                cafile=str(credentials.ca_file) if credentials.ca_file else None,
                cadata=credentials.ca_data,
            )
            if not credentials.verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            tls["ssl_context"] = context
        self._http = urllib3.PoolManager(
            maxsize=pool_size,
            timeout=urllib3.Timeout(connect=5, read=30),
            retries=urllib3.Retry(connect=3, read=0, status=0, redirect=0, backoff_factor=0.2),
            **tls,
        )

    def _url(self, namespace: str, name: str, sub: str = "") -> str:
        group = f"/apis/{contract.GROUP}/{contract.VERSION}"
        path = f"{group}/namespaces/{namespace}/{contract.PLURAL}/{name}"
        return self._credentials.server + path + sub

    def _request(self, method: str, url: str, body: bytes | None = None) -> dict[str, Any]:
        headers = {"Accept": "application/json", "User-Agent": "downloadjobs-worker"}
        token = self._credentials.bearer()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            headers["Content-Type"] = "application/merge-patch+json"
        response = self._http.request(method, url, body=body, headers=headers)
        if response.status >= 400:
            raise ApiError(response.status, _reason(response))
        answer: dict[str, Any] = response.json()
        return answer

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        return self._request("GET", self._url(namespace, name))

    def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch of the status subresource (``None`` removes a field)."""
        body = json.dumps(patch).encode()
        return self._request("PATCH", self._url(namespace, name, "/status"), body)


def _reason(response: urllib3.BaseHTTPResponse) -> str:
    """The API server's ``Status`` message when it sent one, else the HTTP reason."""
    try:
        message = json.loads(response.data).get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or response.reason or "error")[:500]
