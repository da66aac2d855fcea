"""The redaction hook for what downstream systems report for an access request (Art. 15(4),
Recital 63; R-ACC-07).

A system marks data about other people in its report (``POST /api/v1/requests/{id}/
systems/{system}``, ``data``) by making it an object with ``"third_party": true``,
anywhere in the tree: a single value as ``{"value": "bob@example.org", "third_party":
true}``, or a whole record (a ticket message written by someone else) with the key
added to it. Every such object is dropped from the export, with the key or list item
holding it, and counted; nothing else changes. ``"third_party"`` with any other value
than ``true`` is an ordinary key.
"""

from __future__ import annotations

from typing import Any

MARK = "third_party"
#: what the report schema's description says (privacy_hub/api/requests.py)
DESCRIPTION = ("Data about other people is marked by making it an object with "
               '`"third_party": true` anywhere in the tree, e.g. a value as '
               '`{"value": "bob@example.org", "third_party": true}` or a whole record with '
               "the key added: each such object (with its key or list item) is left out of "
               "the subject's export and counted (Art. 15(4), R-ACC-07).")


def is_marked(value: Any) -> bool:
    """An object a system marked as data about another person."""
    return isinstance(value, dict) and value.get(MARK) is True


def redact(data: Any) -> tuple[Any, int]:
    """``data`` without the objects marked third-party, and how many were dropped."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        dropped = 0
        for key, value in data.items():
            if is_marked(value):
                dropped += 1
                continue
            out[key], n = redact(value)
            dropped += n
        return out, dropped
    if isinstance(data, list):
        items: list[Any] = []
        dropped = 0
        for value in data:
            if is_marked(value):
                dropped += 1
                continue
            kept, n = redact(value)
            items.append(kept)
            dropped += n
        return items, dropped
    return data, 0


def redact_report(data: Any) -> tuple[Any, int]:
    """A system's whole report: marked as a whole, nothing of it is the subject's."""
    if is_marked(data):
        return None, 1
    return redact(data)
