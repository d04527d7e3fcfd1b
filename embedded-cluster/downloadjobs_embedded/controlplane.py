"""
The real Kubernetes control plane, built from upstream's Go modules and run as processes.

``controlplane/`` beside this package is a small Go module that links
``k8s.io/kubernetes`` and etcd; :func:`ensure_binary` builds it once per machine
into a cache keyed by the module's content, and :class:`ControlPlane` says how to
run each component (etcd, kube-apiserver, kube-controller-manager) and writes the
credentials and kubeconfigs they and their clients use. Starting, watching and
restarting the processes is :mod:`downloadjobs_embedded.supervisor`'s job.
"""

import hashlib
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import attrs
import yaml

#: The Go module of the control plane (go.mod, go.sum, *.go).
SOURCE = Path(__file__).resolve().parent.parent / "controlplane"
#: The release of k8s.io/kubernetes that go.mod pins (and the kubectl the tests use).
KUBERNETES_VERSION = "v1.34.4"
#: Name of the one Node whose pods the node agent runs.
NODE_NAME = "embedded"
#: Controllers of kube-controller-manager that the system relies on (the rest of
#: upstream's list serves features this project does not use: volumes, nodes' IPAM,
#: certificates, endpoints of Services nothing routes to).
CONTROLLERS = (
    "job-controller",
    "garbage-collector-controller",
    "ttl-after-finished-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "deployment-controller",
    "replicaset-controller",
    "pod-garbage-collector-controller",
    "disruption-controller",
)
#: Users of the static token file: (user, groups). The groups and names are the
#: ones RBAC's bootstrap policy and the Node authorizer know.
IDENTITIES = {
    "admin": ("kubernetes-admin", ("system:masters",)),
    "controller-manager": ("system:kube-controller-manager", ()),
    "scheduler": ("system:kube-scheduler", ()),
    "node": (f"system:node:{NODE_NAME}", ("system:nodes",)),
}


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "downloadjobs" / "controlplane"


def version_ldflags(source: Path = SOURCE) -> str:
    """
    The ``-X`` flags upstream's release build (hack/lib/version.sh) sets, so that
    ``/version`` answers the pinned Kubernetes version (``v1.34.4``) rather than
    ``v0.0.0-master``: Helm checks a chart's ``kubeVersion`` against it, and kubectl
    warns about skew.
    """
    text = (source / "go.mod").read_text()
    match = re.search(r"^\s*k8s\.io/kubernetes v(\d+)\.(\d+)\.(\d+)\s*$", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"{source / 'go.mod'} pins no k8s.io/kubernetes version")
    major, minor, patch = match.groups()
    values = {
        "gitVersion": f"v{major}.{minor}.{patch}",
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
    }
    flags = [
        f"-X {package}.{name}={value}"
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for name, value in values.items()
    ]
    return " ".join(flags)


def source_key(source: Path = SOURCE) -> str:
    """A digest of what the binary is built from: the module's files, flags and Go version."""
    digest = hashlib.sha256()
    for path in sorted([source / "go.mod", source / "go.sum", *source.glob("*.go")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(version_ldflags(source).encode() + b"\0")
    go = subprocess.run(["go", "version"], capture_output=True, text=True, check=False)
    digest.update(go.stdout.encode())
    return digest.hexdigest()[:20]


def ensure_binary(source: Path = SOURCE, progress: bool = True) -> Path:
    """
    The control-plane binary, built on first use and cached by content.

    A cold build compiles most of Kubernetes (about 4,000 packages); ``go build -v``
    prints each package as it goes so a person sees it move. ``$DOWNLOADJOBS_CONTROLPLANE``
    names a binary built elsewhere instead.
    """
    if explicit := os.environ.get("DOWNLOADJOBS_CONTROLPLANE"):
        return Path(explicit)
    if shutil.which("go") is None:
        raise RuntimeError(
            "the embedded cluster needs Go (1.24 or newer) to build Kubernetes' control "
            "plane; install Go, or set DOWNLOADJOBS_CONTROLPLANE to a built binary"
        )
    target = cache_dir() / source_key(source) / "controlplane"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    print(
        f"building the control plane into {target} (once per machine; a cold build takes "
        "5 to 12 minutes on two cores)",
        file=sys.stderr,
        flush=True,
    )
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / "controlplane"
        command = ["go", "build", "-trimpath", "-ldflags", version_ldflags(source)]
        command += ["-o", str(built)]
        if progress:
            command.insert(2, "-v")
        subprocess.run(command, cwd=source, check=True)
        built.replace(target)  # atomic: a concurrent build's result is as good
    return target


def _pem_blocks(text: str) -> list[str]:
    marker = "-----END CERTIFICATE-----"
    return [block.strip() + "\n" + marker + "\n" for block in text.split(marker)[:-1]]


@attrs.define
class ControlPlane:
    """Where the control plane keeps its state, and how each component is run."""

    state_dir: Path
    binary: Path
    etcd_port: int
    etcd_peer_port: int
    apiserver_port: int
    controller_manager_port: int
    #: Pod-failure back-off of the Job controller (upstream: 10 s); tests shorten it.
    job_backoff: str | None = None
    #: Extra kube-controller-manager flags (benchmarks: ``--kube-api-qps=…``).
    controller_manager_flags: list[str] = attrs.field(factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def pki(self) -> Path:
        return self.state_dir / "pki"

    @property
    def ca_file(self) -> Path:
        """The CA that kube-apiserver generated for its serving certificate."""
        return self.pki / "ca.crt"

    def kubeconfig(self, identity: str) -> Path:
        return self.state_dir / f"{identity}.kubeconfig"

    # -- credentials ---------------------------------------------------------------------------

    def prepare(self) -> None:
        """Tokens, the service-account key and the kubeconfigs; kept across restarts."""
        self.pki.mkdir(parents=True, exist_ok=True)
        tokens = self.pki / "tokens.csv"
        if not tokens.exists():
            lines = []
            for identity, (user, groups) in IDENTITIES.items():
                token = secrets.token_urlsafe(32)
                lines.append(f'{token},{user},{identity},"{",".join(groups)}"')
            tokens.write_text("\n".join(lines) + "\n")
            tokens.chmod(0o600)
        subprocess.run(
            [str(self.binary), "service-account-key", str(self.pki / "sa.key")], check=True
        )
        for line in tokens.read_text().splitlines():
            token, _, identity, _ = line.split(",", 3)
            self.write_kubeconfig(self.kubeconfig(identity), {"token": token})

    def write_kubeconfig(self, path: Path, user: dict[str, str], namespace: str = "") -> None:
        context: dict[str, str] = {"cluster": "embedded", "user": "user"}
        if namespace:
            context["namespace"] = namespace
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "embedded",
                    "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": "user", "user": user}],
            "contexts": [{"name": "embedded", "context": context}],
            "current-context": "embedded",
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)

    def publish_ca(self) -> None:
        """
        Copy out the CA of kube-apiserver's self-signed serving certificate.

        Given ``--cert-dir`` and no certificate, kube-apiserver makes a CA and a
        serving certificate for 127.0.0.1 signed by it, and writes both into
        ``apiserver.crt`` (the leaf first); clients need only the CA.
        """
        chain = _pem_blocks((self.pki / "apiserver.crt").read_text())
        self.ca_file.write_text(chain[-1])

    # -- the components ------------------------------------------------------------------------

    def etcd_command(self) -> list[str]:
        return [
            str(self.binary),
            "etcd",
            f"--data-dir={self.state_dir / 'etcd'}",
            f"--listen-client-url=http://127.0.0.1:{self.etcd_port}",
            f"--listen-peer-url=http://127.0.0.1:{self.etcd_peer_port}",
        ]

    def apiserver_command(self) -> list[str]:
        pki = self.pki
        return [
            str(self.binary),
            "kube-apiserver",
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.apiserver_port}",
            f"--cert-dir={pki}",
            f"--token-auth-file={pki / 'tokens.csv'}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.key'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/16",
            # The kubernetes Service's endpoints would be 127.0.0.1, which Endpoints
            # validation refuses; nothing here routes through Services.
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            "--v=0",
        ]

    def controller_manager_command(self) -> list[str]:
        kubeconfig = self.kubeconfig("controller-manager")
        return [
            str(self.binary),
            "kube-controller-manager",
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.controller_manager_port}",
            f"--controllers={','.join(CONTROLLERS)}",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={self.pki / 'sa.key'}",
            f"--root-ca-file={self.ca_file}",
            "--leader-elect=false",
            "--profiling=false",
            "--v=0",
            *self.controller_manager_flags,
        ]

    def controller_manager_env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.job_backoff:
            env["CONTROLPLANE_JOB_POD_FAILURE_BACKOFF"] = self.job_backoff
        return env


if __name__ == "__main__":
    # `make controlplane`: build (or find) the binary and print where it is.
    try:
        print(ensure_binary())
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        sys.exit(f"cannot build the control plane: {exc}")
