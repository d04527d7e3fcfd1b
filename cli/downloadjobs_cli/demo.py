"""
``downloadjobs demo``: the golden path, non-interactively, verified byte for byte.

It uses the stack that ``downloadjobs dev`` is running (found through its
``stack.json``), or starts its own embedded stack for the length of the run.
"""

import argparse
import contextlib
import io
import json
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from downloadjobs import s3
from downloadjobs.settings import S3Settings

TERMINAL = {"completed", "failed", "cancelled"}


def request(method: str, url: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def poll(api: str, job_id: str, timeout: float, interval: float = 1.0) -> dict[str, Any]:
    """Poll a job until it ends, printing each change of progress."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        code, status = request("GET", f"{api}/v1/download/status/{job_id}")
        if code != 200:
            raise RuntimeError(f"status answered {code}: {status}")
        shown = (status["status"], status["progress"])
        if shown != last:
            print(f"  {status['status']:<10} {status['progress']:>3}%", flush=True)
            last = shown
        if status["status"] in TERMINAL:
            return status
        time.sleep(interval)
    raise TimeoutError(f"job {job_id} did not finish within {timeout} s")


def verify(
    bundle: bytes,
    file_ids: list[int],
    missing: list[int],
    s3_settings: S3Settings,
    credentials: dict[str, str],
) -> list[str]:
    """Problems found comparing the bundle with the source objects (none is success)."""
    client = s3.client(s3_settings, credentials=credentials)
    problems = []
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        if archive.testzip() is not None:
            problems.append("a ZIP entry fails its CRC check")
        names = archive.namelist()
        expected = [f"{i}.zip" for i in file_ids if i not in missing]
        if names != expected:
            problems.append(f"entries {names} != expected {expected}")
        for name in set(names) & set(expected):
            key = s3_settings.source_key(int(name.removesuffix(".zip")))
            source = client.get_object(Bucket=s3_settings.source_bucket, Key=key)["Body"].read()
            if archive.read(name) != source:
                problems.append(f"{name} differs from s3://{s3_settings.source_bucket}/{key}")
    return problems


def golden_path(
    api: str,
    file_ids: list[int],
    s3_settings: S3Settings,
    credentials: dict[str, str],
    timeout: float,
) -> int:
    print(f"POST {api}/v1/download/initiate {file_ids}")
    code, created = request("POST", f"{api}/v1/download/initiate", {"file_ids": file_ids})
    if code != 202:
        print(f"initiate answered {code}: {created}")
        return 1
    job_id = created["jobId"]
    print(f"job {job_id} {created['status']}; polling")
    final = poll(api, job_id, timeout)
    if final["status"] != "completed":
        print(f"job ended {final['status']}: {final.get('error')}")
        return 1
    result = final["result"]
    print(f"download {result['size']} bytes (sha256 {result['sha256'][:12]}…)")
    with urllib.request.urlopen(result["downloadUrl"], timeout=30) as response:
        bundle = response.read()
    problems = verify(bundle, file_ids, result["missingFileIds"], s3_settings, credentials)
    for problem in problems:
        print(f"  MISMATCH {problem}")
    if problems:
        return 1
    print(
        f"OK: {len(file_ids) - len(result['missingFileIds'])} entries match their sources "
        f"byte for byte; missing: {result['missingFileIds'] or 'none'}"
    )
    return 0


@contextlib.contextmanager
def stack_for(state_dir: Path) -> Iterator[dict[str, Any]]:
    """A running dev stack's description, or a temporary stack of our own."""
    described = state_dir / "stack.json"
    if described.exists():
        info: dict[str, Any] = json.loads(described.read_text())
        try:
            urllib.request.urlopen(f"{info['api']}/health", timeout=3).close()
        except OSError:
            pass  # a stale description of a stack that is gone
        else:
            print(f"using the running stack at {info['api']}")
            yield info
            return
    from downloadjobs_embedded.stack import Stack

    print("no running stack found; starting an embedded one")
    with (
        tempfile.TemporaryDirectory(prefix="downloadjobs-demo-") as tmp,
        Stack(Path(tmp), worker_delay_ms=(300, 800)) as stack,
    ):
        yield stack.describe()


def run_demo(args: argparse.Namespace) -> int:
    from downloadjobs_embedded import s3server

    file_ids = [int(x) for x in args.file_ids.split(",")]
    with stack_for(Path(args.state_dir)) as info:
        settings = S3Settings(endpoint_url=info["s3"], path_style=True)
        return golden_path(info["api"], file_ids, settings, s3server.BOTO_CREDENTIALS, args.timeout)
