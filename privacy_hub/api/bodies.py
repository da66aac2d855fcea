"""Bodies and queries loaded by hand on the hot paths, and JSON responses.

A hot view documents its schema as ``blp.arguments`` would (``documented``) but loads the
input itself: a fast loader for the common, plainly valid input, and the schema through
webargs for anything else, so every invalid input gets the same 400 or 422 problem
document as before, and the schema stays the one source of the OpenAPI document.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import marshmallow as ma
from flask import Response, request
from flask_smorest import Blueprint

F = TypeVar("F", bound=Callable[..., Any])
#: a hand-written loader: the loaded input, or None to let the schema load it
FastLoader = Callable[[object], dict[str, Any] | None]

_PARSER = Blueprint.ARGUMENTS_PARSER
#: the C encoder with compact separators: several times faster than jsonify for big answers
encode_json = json.JSONEncoder(separators=(",", ":")).encode


def documented(schema: ma.Schema, location: str = "json") -> Callable[[F], F]:
    """Document ``schema`` as ``blp.arguments(schema, location=...)`` does, without parsing
    it: the view loads the input with load_body() or parsed()."""
    if location == "json":
        doc: dict[str, Any] = {"requestBody": {
            "required": True, "content": {"application/json": {"schema": schema}}}}
    else:
        doc = {"parameters": [{"in": location, "required": True, "schema": schema}]}
    decorate: Callable[[F], F] = Blueprint.doc(**doc, responses={"422": "UNPROCESSABLE_ENTITY"})
    return decorate


def parsed(schema: ma.Schema, location: str = "json") -> dict[str, Any]:
    """What ``blp.arguments`` would have passed: webargs' parse, or its 400/422."""
    loaded: dict[str, Any] = _PARSER.parse(schema, request, location=location)
    return loaded


def load_body(schema: ma.Schema, fast: FastLoader) -> dict[str, Any]:
    """The JSON body loaded by ``fast`` when it can, else by ``schema`` through webargs."""
    raw = request.get_data(cache=True)
    if raw:
        try:
            # Strict UTF-8 first, as webargs decodes (json.loads would let surrogates and
            # UTF-16 through); UnicodeDecodeError is a ValueError.
            loaded = fast(json.loads(raw.decode("utf-8")))
        except ValueError:
            loaded = None
        if loaded is not None:
            return loaded
    return parsed(schema, "json")


def json_response(body: Any, status: int = 200) -> Response:
    """``body`` as compact JSON, without marshmallow (the view's schema documents it)."""
    return Response(encode_json(body), status=status, mimetype="application/json")
