"""The DPO console: privacy staff run requests, registries, look-ups, audit and figures.

Server-rendered pages, no JavaScript needed for any function; the same use-case
functions as the API. What the console adds: sign-in with a password and a TOTP code
(``account``), the role's permissions on every view (``requires``), forms with CSRF
tokens, and an audit entry naming the staff member (``actor``) for every action.

A page module joins the blueprint by importing ``bp`` and is listed in ``PAGES`` below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Blueprint, Flask, abort, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import UserMixin, current_user
from werkzeug.wrappers import Response as WerkzeugResponse

import audit
from privacy_hub.staff.roles import allows
from privacy_hub.usecases import staff as staff_cases
from privacy_hub.web import sessions
from privacy_hub.web.context import hub
from privacy_hub.web.security import protect_forms

bp = Blueprint("console", __name__, url_prefix="/console")
protect_forms(bp)

#: the only pages open without signing in (deny by default)
OPEN_PAGES = frozenset({"console.sign_in", "console.signed_out"})

#: the modules whose routes join ``bp`` (imported by init_app)
PAGES = ("account", "home", "staff_pages", "requests_pages", "lookup", "registries",
         "systems_pages", "audit_pages", "ropa_pages", "figures_pages")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class SignedInStaff(UserMixin):  # type: ignore[misc]
    """The staff member a console session belongs to (id, role, what the role allows)."""

    staff_id: str
    role: str
    email: str
    permissions: frozenset[str] = field(default_factory=frozenset)

    def get_id(self) -> str:
        return f"staff:{self.staff_id}"

    def can(self, permission: str) -> bool:
        return allows(self.role, permission)


def load_staff(staff_id: str) -> SignedInStaff | None:
    """An active staff member, else nobody (a disabled member's session ends at once)."""
    with hub().read_sessions() as session:
        found = staff_cases.signed_in(hub(), session, staff_id)
    if found is None:
        return None
    return SignedInStaff(found["id"], found["role"], found["email"], found["permissions"])


def me() -> SignedInStaff:
    """The signed-in staff member (every view but the open ones has one)."""
    return cast(SignedInStaff, current_user._get_current_object())


def actor() -> audit.Actor:
    """Who does what a console view does: the staff member, by id."""
    return audit.Actor("staff", me().staff_id)


def requires(permission: str) -> Callable[[F], F]:
    """The view answers 403 to a role without ``permission`` (staff/roles.py)."""
    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not me().can(permission):
                abort(403)
            return view(*args, **kwargs)
        wrapper.permission = permission  # type: ignore[attr-defined]  # read by the role tests
        return cast(F, wrapper)
    return decorate


@bp.before_request
def _signed_in_only() -> WerkzeugResponse | None:
    if request.endpoint in OPEN_PAGES or current_user.is_authenticated:
        return None
    return redirect(url_for("console.sign_in"), 303)


def role_names() -> dict[str, str]:
    """Each role's name for people, in the page's language."""
    return {"admin": _("Admin"), "dpo": _("Data protection officer"), "agent": _("Agent"),
            "auditor": _("Auditor")}


@bp.context_processor
def _console_layout() -> dict[str, object]:
    signed_in = current_user.is_authenticated and isinstance(
        current_user._get_current_object(), SignedInStaff)
    return {"staff": me() if signed_in else None, "role_names": role_names(),
            "can": (lambda p: me().can(p)) if signed_in else (lambda p: False)}


@bp.errorhandler(403)
def _forbidden(_exc: Exception) -> tuple[str, int]:
    return render_template("console/forbidden.html"), 403


def init_app(app: Flask) -> None:
    import importlib

    for name in PAGES:
        importlib.import_module(f"privacy_hub.console.{name}")
    sessions.register_loader("staff", load_staff)
    sessions.login_manager.blueprint_login_views["console"] = "console.sign_in"
    app.register_blueprint(bp)
