"""Refuse text no database can store, before any view sees it.

JSON may spell U+0000 and unpaired UTF-16 surrogates as escapes (``"\\u0000"``,
``"\\ud800"``). Python decodes them into ``str`` values that PostgreSQL refuses (NUL in
``text``) and that cannot be encoded as UTF-8 (surrogates) for blind indexes or
ciphertexts, so without this guard they surface as 500s deep in a request. No field of
the API has a use for them: they are invalid input, answered with 422 naming the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from flask import Response, request

from privacy_hub.web.problems import problem_response

# Only an escape can carry such a character into a JSON text: raw NUL bytes and raw
# surrogates are rejected by the JSON and UTF-8 decoders already. Cheap to search for.
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_MESSAGE = "must be Unicode text without NUL characters or unpaired surrogates"


def unstorable(text: str) -> bool:
    """True if ``text`` holds U+0000 or a lone surrogate."""
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def suspect_json(raw: bytes) -> bool:
    """Whether a JSON text may decode to unstorable strings (a fast pre-check)."""
    return _SUSPECT_ESCAPE.search(raw) is not None


def _bad_paths(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, str):
        if unstorable(value):
            yield path or "_schema"
    elif isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if unstorable(key):
                yield path or "_schema"
            else:
                yield from _bad_paths(item, child)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _bad_paths(item, f"{path}.{i}" if path else str(i))


def reject_unstorable_text() -> Response | None:
    """``before_request`` for the API: 422 for such text in the query or the JSON body.

    In the path it can only be an id or name that no resource has: 404.
    """
    if not request.path.startswith("/api/"):
        return None
    if unstorable(request.path):
        return problem_response(404, "No resource has this id or name.")
    errors: dict[str, list[str]] = {}
    for name, value in request.args.items(multi=True):
        if unstorable(name) or unstorable(value):
            errors[name if not unstorable(name) else "_query"] = [_MESSAGE]
    if request.mimetype == "application/json" and request.content_length != 0:
        raw = request.get_data(cache=True)
        if suspect_json(raw):
            try:
                body = json.loads(raw)
            except ValueError:
                body = None  # malformed: the view's parser answers 400
            for path in _bad_paths(body, ""):
                errors[path] = [_MESSAGE]
    if errors:
        return problem_response(422, "The request has invalid fields: " + ", ".join(sorted(errors)),
                                errors=errors)
    return None
