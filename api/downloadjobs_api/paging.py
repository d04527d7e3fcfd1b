"""
Cursor paging of a caller's jobs, newest first: the cursor is the last item's
(submitted-at, name), opaque to clients, checked when it comes back.
"""

import base64
import binascii
import json
from typing import Any

from downloadjobs import resource


class InvalidCursor(ValueError):
    """A list cursor this API did not make (400)."""


def _order(body: dict[str, Any]) -> tuple[str, str]:
    return resource.submitted_at(body), body["metadata"]["name"]


def encode_cursor(body: dict[str, Any]) -> str:
    raw = json.dumps(list(_order(body))).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, name = json.loads(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidCursor("the cursor is not one this API returned") from exc
    if not isinstance(stamp, str) or not isinstance(name, str):
        raise InvalidCursor("the cursor is not one this API returned")
    return stamp, name


def page(
    bodies: list[dict[str, Any]], limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """``limit`` bodies after ``cursor``, newest first, and the cursor of the next page."""
    ordered = sorted(bodies, key=_order, reverse=True)
    if cursor:
        after = decode_cursor(cursor)
        ordered = [b for b in ordered if _order(b) < after]
    chosen = ordered[:limit]
    more = len(ordered) > limit
    return chosen, (encode_cursor(chosen[-1]) if more and chosen else None)
