"""What an audit entry may hold: small, plain JSON details and ids, nothing personal."""

from __future__ import annotations

import math
from collections.abc import Mapping

from audit.chain import canonical_json
from audit.errors import InvalidAuditEntry, PersonalDataInAudit

MAX_DETAILS_BYTES = 4096

_MAX_DEPTH = 16


def encode_details(details: Mapping[str, object] | None) -> str:
    """Canonical JSON of ``details`` after checking they are small, plain and impersonal."""
    value: dict[str, object] = dict(details or {})
    _check_value(value, 0)
    text = canonical_json(value)
    if len(text.encode("utf-8")) > MAX_DETAILS_BYTES:
        raise InvalidAuditEntry(f"details exceed {MAX_DETAILS_BYTES} bytes")
    return text


def check_id(what: str, value: str, max_len: int) -> None:
    """Refuse an id that is empty, too long, or looks like an email address."""
    if not value or len(value) > max_len:
        raise InvalidAuditEntry(f"{what} must be 1 to {max_len} characters")
    if "@" in value:
        raise PersonalDataInAudit(f"{what} looks like an email address")


def _check_value(value: object, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise InvalidAuditEntry("details are nested too deeply")
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidAuditEntry("details hold a non-finite number")
        return
    if isinstance(value, str):
        _check_text(value)
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_value(item, depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidAuditEntry("details keys must be strings")
            _check_text(key)
            _check_value(item, depth + 1)
        return
    raise InvalidAuditEntry(f"details hold a {type(value).__name__}, which is not JSON")


def _check_text(text: str) -> None:
    # R-AUD-02: minimal data. An "@" is the one unmistakable sign of an email address.
    if "@" in text:
        raise PersonalDataInAudit("details contain what looks like an email address")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidAuditEntry("details contain text that is not valid Unicode") from None
