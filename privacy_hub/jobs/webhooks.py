"""Signed webhooks: the body downstream systems receive and its signature.

``Privacy-Hub-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` keyed with
the receiving system's webhook secret (API.md "Systems and webhooks"). The timestamp is
inside the MAC, so a captured delivery cannot be replayed later than the tolerance.

Standard library only: the Python client imports ``verify`` from here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

SIGNATURE_HEADER = "Privacy-Hub-Signature"
EVENT_ID_HEADER = "Privacy-Hub-Event-Id"
USER_AGENT = "privacy-hub-webhooks/1"
DEFAULT_TOLERANCE = 300
_MAX_HEADER = 4096


def _mac(secret: str, body: bytes, timestamp: int) -> str:
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``Privacy-Hub-Signature`` header value for ``body`` sent at ``timestamp``."""
    return f"t={int(timestamp)},v1={_mac(secret, body, timestamp)}"


def verify(secret: str, body: bytes, header: str, *, tolerance: int = DEFAULT_TOLERANCE,
           now: int | None = None) -> bool:
    """True when ``header`` signs exactly ``body`` with ``secret`` within ``tolerance`` s.

    Several ``v1=`` values are accepted (any may match), so a receiver can be sent two
    signatures while a secret is rotated. Malformed headers are simply not valid.
    """
    if not isinstance(header, str) or len(header) > _MAX_HEADER:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit():
                return False
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = int(time.time()) if now is None else now
    if abs(current - timestamp) > tolerance:
        return False  # stale or from the future: a replay, or a clock far off
    expected = _mac(secret, body, timestamp).encode("ascii")
    ok = False
    for candidate in candidates:
        # Compare every candidate, in constant time each (no early exit on a match).
        ok |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    return ok


def body(event_id: str, event_type: str, created_at: str, data: Mapping[str, Any]) -> bytes:
    """The JSON body of one event: the same bytes on every retry."""
    return json.dumps({"id": event_id, "type": event_type, "created_at": created_at,
                       "data": data}, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def headers(secret: str, payload: bytes, event_id: str, *, timestamp: int) -> dict[str, str]:
    """Every header a delivery carries."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_ID_HEADER: event_id,
        SIGNATURE_HEADER: sign(secret, payload, timestamp),
    }
