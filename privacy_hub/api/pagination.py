"""Opaque cursors: ``?limit=`` (default 50, max 1000) and ``?cursor=`` (API.md "Conventions").

Every list answers ``{"items": [...], "next_cursor": "..." | null}``. A list read from the
database a page at a time keeps its own keyset (``read_cursor`` and ``encode_cursor``); a
short list the use case returns whole (the purposes, one customer's consents, history,
statements, TC strings) is cut into pages here by ``page_of``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import marshmallow as ma

from privacy_hub.api.bodies import encode_json
from privacy_hub.api.input_guard import suspect_json, unstorable
from privacy_hub.api.problems import Problem

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
#: the longest cursor taken: a position is a few short values
MAX_CURSOR = 512


class PageArgs(ma.Schema):
    limit = ma.fields.Integer(load_default=DEFAULT_LIMIT,
                              validate=ma.validate.Range(min=1, max=MAX_LIMIT),
                              metadata={"description": "Items per page (1-1000, default 50)."})
    cursor = ma.fields.String(load_default=None, validate=ma.validate.Length(max=MAX_CURSOR),
                              metadata={"description": "Opaque cursor from `next_cursor` of the "
                                                       "previous page; omit it for the first."})


#: an instance: given a class, webargs builds a new schema on every request
PAGE = PageArgs()


def next_cursor_field() -> ma.fields.String:
    """The ``next_cursor`` of a page schema, documented once."""
    return ma.fields.String(allow_none=True, metadata={
        "description": "Pass as `cursor` for the next page; null on the last page."})


def bad_cursor() -> Problem:
    """The one answer to a cursor this endpoint did not give out."""
    return Problem(422, "The cursor is not one this endpoint gave out.",
                   errors={"cursor": ["invalid cursor; pass next_cursor from a previous page"]})


def encode_cursor(position: dict[str, Any]) -> str:
    raw = encode_json(position).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, *, required_keys: tuple[str, ...]) -> dict[str, Any] | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        # A forged cursor could carry NUL or a lone surrogate into a query: a 500.
        position = None if suspect_json(raw) else json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        position = None
    if not isinstance(position, dict) or any(k not in position for k in required_keys):
        raise bad_cursor()
    return position


def read_cursor(cursor: str | None, **kinds: type) -> dict[str, Any] | None:
    """The position in ``cursor``, each value checked to be of its kind (``str``, ``int``
    or an aware ``datetime``, read from its ISO text): a forged cursor is a 422 naming
    ``cursor``, never a 500 in a comparison or a query."""
    position = decode_cursor(cursor, required_keys=tuple(kinds))
    if position is None:
        return None
    out: dict[str, Any] = {}
    for name, kind in kinds.items():
        value = position[name]
        if kind is datetime:
            out[name] = _aware(value)
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad_cursor()
            out[name] = value
        elif not isinstance(value, str) or len(value) > MAX_CURSOR or unstorable(value):
            raise bad_cursor()
        else:
            out[name] = value
    return out


def _aware(value: object) -> datetime:
    if not isinstance(value, str):
        raise bad_cursor()
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise bad_cursor() from None
    if when.tzinfo is None:
        raise bad_cursor()
    return when


def page_of(items: Sequence[dict[str, Any]], page: dict[str, Any], *,
            key: str) -> dict[str, Any]:
    """One page of a list held whole, in its order: the items after the one whose ``key``
    the cursor names, at most ``page["limit"]``. ``key`` is unique in the list (an id, a
    purpose key). The lists cut here only grow (nothing in them is deleted), so an item
    named by a cursor stays in the list; one that is not there was not given out. (An
    erasure empties a customer's lists at once: their walk simply ends.)"""
    start = 0
    position = read_cursor(page["cursor"], after=str)
    if position is not None and items:
        found = next((i for i, item in enumerate(items) if item[key] == position["after"]), None)
        if found is None:
            raise bad_cursor()
        start = found + 1
    limit = int(page["limit"])
    chunk = list(items[start:start + limit])
    more = start + limit < len(items)
    return {"items": chunk,
            "next_cursor": encode_cursor({"after": chunk[-1][key]}) if more and chunk else None}
