"""
The S3 servers ``bundle.py`` can measure against, each started on localhost.

- ``moto`` (the default): moto_server, the S3 of ``downloadjobs dev`` and the tests.
  Its CompleteMultipartUpload joins every part into one buffer in Python, about
  4-5 s per GiB on the development machine, which S3 does not do.
- ``seaweedfs``: SeaweedFS's S3 gateway, ``weed server -s3`` (master, volume server,
  filer and S3 gateway in one process), built from the Go module pinned in
  ``benchmarks/seaweedfs/``. Its CompleteMultipartUpload writes the object's metadata
  only, a list of the parts' chunks (``weed/s3api/filer_multipart.go``), and combines
  the parts' CRC-32s into the full-object checksum without reading the data, as S3 does.

``python benchmarks/s3servers.py seaweedfs`` (``make seaweedfs``) builds the SeaweedFS
binary once per machine into ``~/.cache/downloadjobs/seaweedfs/<digest>/weed``, the digest
of ``go.mod``, ``go.sum`` and the Go version, as ``make controlplane`` builds the embedded
cluster's control plane; ``$DOWNLOADJOBS_SEAWEEDFS`` names a binary built elsewhere.
"""

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from downloadjobs import s3
from downloadjobs.settings import S3Settings
from downloadjobs_embedded import s3server
from downloadjobs_embedded.stack import free_port

#: The Go module that pins SeaweedFS and its dependencies.
SEAWEEDFS_SOURCE = Path(__file__).resolve().parent / "seaweedfs"
#: Its main package (go.mod's ``tool`` directive).
SEAWEEDFS_PACKAGE = "github.com/seaweedfs/seaweedfs/weed"
SERVERS = ("moto", "seaweedfs")


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "downloadjobs" / "seaweedfs"


def source_key(source: Path = SEAWEEDFS_SOURCE) -> str:
    """A digest of what the binary is built from: go.mod, go.sum and the Go version."""
    digest = hashlib.sha256()
    for path in (source / "go.mod", source / "go.sum"):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    go = subprocess.run(["go", "version"], capture_output=True, text=True, check=False)
    digest.update(go.stdout.encode())
    return digest.hexdigest()[:20]


def ensure_seaweedfs(source: Path = SEAWEEDFS_SOURCE) -> Path:
    """The ``weed`` binary, built on first use (1,700 packages) and cached by content."""
    if explicit := os.environ.get("DOWNLOADJOBS_SEAWEEDFS"):
        return Path(explicit)
    if shutil.which("go") is None:
        raise RuntimeError("building SeaweedFS needs Go 1.26.6 or newer (seaweedfs/go.mod)")
    target = _cache_dir() / source_key(source) / "weed"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"building SeaweedFS into {target} (once per machine)", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / "weed"
        command = ["go", "build", "-trimpath", "-v", "-o", str(built), SEAWEEDFS_PACKAGE]
        subprocess.run(command, cwd=source, check=True)
        built.replace(target)  # atomic: a concurrent build's result is as good
    return target


def _wait_until_writable(endpoint: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """
    Until a PUT succeeds: the gateway answers before the volume server has registered
    with the master, and a write in between fails.
    """
    client = s3.client(
        S3Settings(endpoint_url=endpoint, path_style=True), credentials=s3server.BOTO_CREDENTIALS
    )
    deadline = time.monotonic() + 120
    error: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed server exited with {process.returncode}; see {log}")
        try:
            with contextlib.suppress(ClientError):
                client.create_bucket(Bucket="ready-probe")
            client.put_object(Bucket="ready-probe", Key="probe", Body=b"x")
            client.delete_object(Bucket="ready-probe", Key="probe")
            client.delete_bucket(Bucket="ready-probe")
            return
        except (BotoCoreError, ClientError) as exc:
            error = exc
            time.sleep(0.5)
    raise RuntimeError(f"SeaweedFS's S3 gateway did not take a write ({error}); see {log}")


@contextlib.contextmanager
def seaweedfs(state: Path) -> Iterator[str]:
    """``weed server -s3`` on 127.0.0.1, its data and log under ``state``: the S3 endpoint."""
    binary = ensure_seaweedfs()
    data = state / "seaweedfs"
    data.mkdir(parents=True, exist_ok=True)
    config = data / "s3.json"
    identity = {
        "name": "benchmark",
        "credentials": [
            {
                "accessKey": s3server.CREDENTIALS["AWS_ACCESS_KEY_ID"],
                "secretKey": s3server.CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            }
        ],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    grpc = {name: free_port() for name in ports}
    command = [
        str(binary),
        "server",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        # the master reports usage to seaweedfs.com by default: nothing leaves this machine
        "-master.telemetry=false",
        "-master.telemetry.url=http://127.0.0.1:9/",
        "-master.volumeSizeLimitMB=1024",
        "-volume.max=0",  # as many volumes as the disk holds
        "-s3",
        f"-s3.config={config}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]
    for name, port in ports.items():
        command += [f"-{name}.port={port}", f"-{name}.port.grpc={grpc[name]}"]
    log = state / "seaweedfs.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    try:
        _wait_until_writable(endpoint, process, log)
        yield endpoint
    finally:
        process.terminate()  # a graceful stop takes about 25 s; the data is thrown away
        try:
            process.wait(3)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        # its Unix sockets for local gRPC and the filer, which a killed server leaves behind
        for port in [*ports.values(), *grpc.values()]:
            for socket in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                socket.unlink(missing_ok=True)


@contextlib.contextmanager
def moto(state: Path) -> Iterator[str]:
    """moto_server, its request log in a file: the S3 endpoint."""
    port = free_port()
    process = s3server.start_moto(port, state / "moto.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def serve(name: str, state: Path) -> contextlib.AbstractContextManager[str]:
    """The S3 server ``name`` (one of :data:`SERVERS`), started; yields its endpoint."""
    return {"moto": moto, "seaweedfs": seaweedfs}[name](state)


if __name__ == "__main__":
    # `make seaweedfs`: build (or find) the binary and print where it is.
    if sys.argv[1:] != ["seaweedfs"]:
        sys.exit("usage: python benchmarks/s3servers.py seaweedfs")
    try:
        print(ensure_seaweedfs())
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        sys.exit(f"cannot build SeaweedFS: {exc}")
