"""Security headers and CSRF for the pages people use (portal, console, public pages).

The API authenticates with bearer keys and takes JSON, so it needs no CSRF token; every
HTML form opts in with ``protect_forms(blueprint)``. Pages carry a Content-Security-Policy
that allows no inline script or style and no framing (DESIGN.md "Interfaces people use").
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()

#: Only the hub's own files: no inline script or style, no third-party origin, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)


def init_app(app: Flask) -> None:
    # Checked per blueprint (protect_forms), not for every POST: API clients send no
    # cookies and no token, and an RFC 8058 one-click unsubscribe POST cannot carry one.
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    app.config.setdefault("WTF_CSRF_SSL_STRICT", True)
    csrf.init_app(app)
    app.after_request(_page_headers)


def protect_forms(blueprint: Blueprint) -> None:
    """Every POST to ``blueprint`` must carry the session's CSRF token (400 otherwise)."""
    blueprint.before_request(csrf.protect)


def _page_headers(response: Response) -> Response:
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        # A page may show personal data: never kept by a shared cache or the back button.
        response.headers.setdefault("Cache-Control", "no-store")
    return response
