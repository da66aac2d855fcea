"""Signed-in people: one session cookie per surface, and one flask-login for all.

The portal's cookie is sent only to ``/portal`` and the console's only to ``/console``:
a customer's session is never a staff member's and neither leaks to the other's pages.
Each is HttpOnly, SameSite=Lax, Secure over HTTPS, and expires after its idle time (the
signature's timestamp is checked on every request and renewed by each one).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface
from flask_login import LoginManager, UserMixin

#: path prefix -> cookie name; anything else (public pages) gets the last one
SURFACES: dict[str, str] = {"/portal": "hub_portal", "/console": "hub_console"}
#: path prefix -> the only kind of person its sessions may sign in: a portal cookie copied
#: into the console's cookie (both are signed with the same key) signs nobody in there
SURFACE_KINDS: dict[str, str] = {"/portal": "customer", "/console": "staff"}
PUBLIC_COOKIE = "hub_session"
IDLE_TIMEOUT = timedelta(minutes=30)

login_manager = LoginManager()
#: person kind ("customer", "staff") -> loader of such a person by their id
_LOADERS: dict[str, Callable[[str], UserMixin | None]] = {}


def _surface() -> str | None:
    path = request.path
    for prefix in SURFACES:
        if path == prefix or path.startswith(prefix + "/"):
            return prefix
    return None


class SurfaceSessions(SecureCookieSessionInterface):
    """Flask's signed cookie session, with a cookie name and path per surface."""

    def get_cookie_name(self, app: Flask) -> str:
        surface = _surface()
        return SURFACES[surface] if surface else PUBLIC_COOKIE

    def get_cookie_path(self, app: Flask) -> str:
        return _surface() or "/"

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure


def init_app(app: Flask) -> None:
    app.session_interface = SurfaceSessions()
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=IDLE_TIMEOUT,
        SESSION_REFRESH_EACH_REQUEST=True,
        REMEMBER_COOKIE_DURATION=timedelta(0),
    )
    login_manager.init_app(app)
    login_manager.user_loader(_load)
    login_manager.session_protection = "strong"


def register_loader(kind: str, loader: Callable[[str], UserMixin | None]) -> None:
    """The surface of ``kind`` loads its signed-in people with ``loader``."""
    _LOADERS[kind] = loader


def _load(user_id: str) -> Any:
    kind, _, ident = user_id.partition(":")
    surface = _surface()
    if surface is None or SURFACE_KINDS.get(surface) != kind:
        return None
    loader = _LOADERS.get(kind)
    return loader(ident) if loader and ident else None
