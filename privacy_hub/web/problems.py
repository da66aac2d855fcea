"""RFC 9457 problem documents as HTTP responses: the one renderer the API, the request
plumbing (privacy_hub/web/context.py) and the error handlers share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Response, json

PROBLEM_BASE = "https://privacy-hub.dev/problems/"
MEDIA_TYPE = "application/problem+json"

_TITLES = {
    400: "Malformed request", 401: "Authentication required", 403: "Forbidden",
    404: "Not found", 405: "Method not allowed", 409: "Conflict", 410: "Gone",
    413: "Request body too large", 415: "Unsupported media type",
    422: "Invalid request", 429: "Too many requests", 500: "Internal error",
    503: "Service unavailable",
}
_TYPES = {
    400: "malformed-request", 401: "unauthenticated", 403: "forbidden", 404: "not-found",
    405: "method-not-allowed", 409: "conflict", 410: "gone", 413: "too-large",
    415: "unsupported-media-type", 422: "validation-error", 429: "rate-limited",
    500: "internal-error", 503: "unavailable",
}


def title(status: int) -> str:
    """The problem title of an HTTP status."""
    return _TITLES.get(status, "Error")


def problem_response(status: int, detail: str, *, errors: Mapping[str, list[str]] | None = None,
                     type_: str | None = None, headers: Mapping[str, str] | None = None,
                     **extra: Any) -> Response:
    """A problem document: type, title, status, detail, and per-field ``errors``."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + (type_ or _TYPES.get(status, "error")),
        "title": title(status),
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = {k: list(v) for k, v in errors.items()}
    body.update(extra)
    resp = Response(json.dumps(body), status=status, mimetype=MEDIA_TYPE)
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp
