"""
What the worker shares with the rest about the DownloadJob, without pydantic: the
resource's address, the spec's limits, the exit code of a failure for good, the
content key of a bundle and the clock of status timestamps.

:mod:`downloadjobs.model` re-exports all of it; a worker pod imports this instead,
because loading pydantic took a third of its start (issue 18).
"""

import datetime
import hashlib
import json
from collections.abc import Iterable, Mapping

GROUP = "downloadjobs.dev"
VERSION = "v1alpha1"
PLURAL = "downloadjobs"

#: The original download service's limits, shared by the API and the CRD.
MIN_FILE_ID = 10_000
MAX_FILE_ID = 100_000_000
MAX_FILES = 1000

#: The worker's exit code for failures no retry can fix (all sources missing, bad
#: spec): the Job's podFailurePolicy turns it into an immediate Job failure.
EXIT_PERMANENT = 42

#: The version of the bundle's layout (entry names, order, timestamps): part of every
#: content key, so a worker that writes another layout never reuses an older bundle.
BUNDLE_FORMAT = 1


def content_key(file_ids: Iterable[int], etags: Mapping[int, str | None], compression: str) -> str:
    """
    What a bundle holds, as 40 hex digits (a label value): the file ids in order of
    id, each source's ETag (``None`` when missing), the compression and the format.
    Two requests for the same files, in any order, while no source changed, share it.
    """
    files = [[file_id, etags.get(file_id)] for file_id in sorted(set(file_ids))]
    canonical = {"format": BUNDLE_FORMAT, "compression": compression, "files": files}
    encoded = json.dumps(canonical, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:40]


def utcnow() -> datetime.datetime:
    """Now, in UTC, to the second (what Kubernetes timestamps carry)."""
    return datetime.datetime.now(tz=datetime.UTC).replace(microsecond=0)
