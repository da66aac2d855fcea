"""The customer privacy portal: a customer sees, decides, takes and erases their data.

Server-rendered pages, no JavaScript needed for any function. Every page calls the same
use-case functions as the API; the portal adds only what a person needs: sign-in by a
mailed link (``sign_in``), forms with CSRF tokens and errors beside their fields, and the
customer's own language.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, Flask, g, redirect, request, url_for
from flask_login import UserMixin, current_user
from werkzeug.wrappers import Response as WerkzeugResponse

from privacy_hub.usecases import subject
from privacy_hub.web import sessions
from privacy_hub.web.context import hub
from privacy_hub.web.security import protect_forms

bp = Blueprint("portal", __name__, url_prefix="/portal")
protect_forms(bp)

#: the only pages open without signing in (deny by default, as SecureDrop does)
OPEN_PAGES = frozenset({"portal.start", "portal.confirm_link", "portal.use_link",
                        "portal.sign_out", "portal.signed_out",
                        # the inactivity mail's signed link (R-RET-02)
                        "portal.keep_account", "portal.keep_account_confirm"})


@bp.before_request
def _signed_in_only() -> WerkzeugResponse | None:
    if request.endpoint in OPEN_PAGES or current_user.is_authenticated:
        return None
    return redirect(url_for("portal.start"), 303)


@dataclass
class SignedInCustomer(UserMixin):  # type: ignore[misc]
    """The customer a portal session belongs to (ids only; their data stays in the vault)."""

    customer_id: str
    locale: str | None = None

    def get_id(self) -> str:
        return f"customer:{self.customer_id}"


def load_customer(customer_id: str) -> SignedInCustomer | None:
    """An active customer, else nobody (an erased customer's session ends with them)."""
    with hub().read_sessions() as session:
        found = subject.signed_in(hub(), session, customer_id)
    if found is None:
        return None
    g.person_locale = found["locale"]
    return SignedInCustomer(customer_id, found["locale"])


def init_app(app: Flask) -> None:
    from privacy_hub.portal import account, keep, pages, rights  # noqa: F401 - their routes join bp

    sessions.register_loader("customer", load_customer)
    sessions.login_manager.blueprint_login_views["portal"] = "portal.start"
    app.register_blueprint(bp)
