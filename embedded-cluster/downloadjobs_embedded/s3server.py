"""
An S3 endpoint over real HTTP: moto's server in a subprocess, seeded with samples.

Sample source files are deterministic (:func:`sample_content`), so a demo or a
test can check a bundle byte for byte without keeping copies around.
"""

import random
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from downloadjobs import s3
from downloadjobs.settings import S3Settings

#: The sample catalogue: file ids 70000..70099 exist; anything else is "missing".
SAMPLE_IDS = range(70000, 70100)
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "embedded", "AWS_SECRET_ACCESS_KEY": "embedded-secret"}
BOTO_CREDENTIALS = {
    "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
    "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
}


def sample_content(file_id: int) -> bytes:
    """The bytes of sample file ``file_id``: 64 KiB to 512 KiB, the same on every run."""
    size = (file_id % 8 + 1) * 64 * 1024
    return random.Random(file_id).randbytes(size)


def start_moto(port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """Start moto_server on 127.0.0.1:port; its request log goes to a file, not a pipe."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {process.returncode}; see {log_path}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
            return process
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"moto_server did not answer on port {port}; see {log_path}")


def seed(settings: S3Settings, ids: range = SAMPLE_IDS) -> Any:
    """Create both buckets and upload the sample source files."""
    client = s3.client(settings, credentials=BOTO_CREDENTIALS)
    for bucket in {settings.source_bucket, settings.bundle_bucket}:
        client.create_bucket(Bucket=bucket)
    for file_id in ids:
        client.put_object(
            Bucket=settings.source_bucket,
            Key=settings.source_key(file_id),
            Body=sample_content(file_id),
        )
    return client
