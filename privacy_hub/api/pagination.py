"""Opaque cursors: ``?limit=`` (default 50, max 1000) and ``?cursor=``."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import marshmallow as ma

from privacy_hub.api.bodies import encode_json
from privacy_hub.api.input_guard import suspect_json
from privacy_hub.api.problems import Problem

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


class PageArgs(ma.Schema):
    limit = ma.fields.Integer(load_default=DEFAULT_LIMIT,
                              validate=ma.validate.Range(min=1, max=MAX_LIMIT),
                              metadata={"description": "Items per page (1-1000)."})
    cursor = ma.fields.String(load_default=None, validate=ma.validate.Length(max=512),
                              metadata={"description": "Opaque cursor from `next_cursor`."})


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
        raise Problem(422, "The cursor is not one this endpoint gave out.",
                      errors={"cursor": ["invalid cursor; pass next_cursor from a previous page"]})
    return position
