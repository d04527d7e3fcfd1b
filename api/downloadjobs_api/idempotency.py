"""
Idempotency-Key: the same (owner, key) always names the same job, so a retried
initiate finds the job its first attempt made instead of making another.
"""

import datetime
import hashlib
import hmac
import json
import uuid
from typing import Any

from downloadjobs import model, resource
from downloadjobs_api import schemas

#: The SHA-256 of an initiate request made with an Idempotency-Key, to tell a
#: replay (same body) from a misuse of the key (another body).
ANNOTATION_REQUEST_SHA256 = f"{model.GROUP}/request-sha256"


class IdempotencyMismatch(ValueError):
    """The Idempotency-Key was used with another body, or is too old to reuse (422)."""


def request_digest(request: schemas.InitiateRequest) -> str:
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotent_name(secret: bytes, owner: str, key: str) -> str:
    """
    The job name for (owner, key): the same pair always names the same resource,
    so the API server's AlreadyExists makes concurrent duplicates one job. A keyed
    HMAC, so that nobody without ``secret`` can tell which name a pair gets (a
    public derivation would let anyone predict, and probe for, another's jobs).
    Shaped as a UUID (version 4: the digest is indistinguishable from random).
    """
    digest = hmac.new(secret, f"{owner}\n{key}".encode(), hashlib.sha256).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def replayed(existing: dict[str, Any], digest: str, window_seconds: int) -> dict[str, Any]:
    """
    The job a key made before, if this request is the same one within the window;
    else :class:`IdempotencyMismatch`.
    """
    annotations = resource.annotations(existing)
    if annotations.get(ANNOTATION_REQUEST_SHA256) != digest:
        raise IdempotencyMismatch(
            "this Idempotency-Key was used with another request body; use a new key"
        )
    then = model.parse_time(resource.submitted_at(existing))
    if then is not None:
        age = datetime.datetime.now(tz=datetime.UTC) - then
        if age.total_seconds() > window_seconds:
            raise IdempotencyMismatch(
                "this Idempotency-Key has expired (it is older than "
                f"{window_seconds} s); use a new key"
            )
    return existing
