"""Signing in with a mailed link, and signing out."""

from __future__ import annotations

from flask import redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from privacy_hub.portal import bp, load_customer
from privacy_hub.portal.forms import LinkForm, SignInForm
from privacy_hub.usecases import sign_in as links
from privacy_hub.web import i18n
from privacy_hub.web.context import db, hub, limiter

#: link requests per address and per client address, each an hour
PER_ADDRESS, PER_CLIENT = 5, 30



def _too_many(email: str) -> float | None:
    """Seconds to wait when this address or this client asked too often, else None."""
    rates = limiter()
    waits = [rates.hit("portal-link|" + email.strip().lower(), limit=PER_ADDRESS, window=3600),
             rates.hit("portal-client|" + (request.remote_addr or "?"), limit=PER_CLIENT,
                         window=3600)]
    return max((w for w in waits if w is not None), default=None)


@bp.route("/", methods=["GET", "POST"])
def start() -> str | Response | tuple[str, int]:
    """Sign in: an address in, a link out; the same answer for every address."""
    if current_user.is_authenticated:
        return redirect(url_for("portal.my_data"))
    form = SignInForm()
    if form.validate_on_submit():
        wait = _too_many(form.email.data)
        if wait is not None:
            minutes = max(1, round(wait / 60))
            form.email.errors.append(_("Too many sign-in links were asked for. Try again in "
                                       "%(minutes)d minutes.", minutes=minutes))
            return render_template("portal/start.html", form=form), 429
        try:
            # The mail speaks the language of this page, if it was chosen rather than a fallback.
            links.send_link(hub(), db(), form.email.data, locale=i18n.chosen_locale())
        except links.InvalidAddress:
            form.email.errors.append(_("Enter an email address, like name@example.com"))
            return render_template("portal/start.html", form=form), 422
        return render_template("portal/link_sent.html")
    status = 422 if form.errors else 200
    return render_template("portal/start.html", form=form), status


@bp.get("/sign-in/confirm")
def confirm_link() -> tuple[str, int]:
    """The mailed link shows a button; only pressing it signs in (mail scanners open
    links, and must not use them up)."""
    token = request.args.get("token", "")
    if not token or not links.is_valid(db(), token):
        return render_template("portal/link_invalid.html", form=SignInForm()), 410
    return render_template("portal/confirm_link.html", form=LinkForm(token=token)), 200


@bp.post("/sign-in/confirm")
def use_link() -> Response | tuple[str, int]:
    form = LinkForm()
    if not form.validate_on_submit():
        return render_template("portal/link_invalid.html", form=SignInForm()), 410
    try:
        customer_id = links.redeem(db(), form.token.data)
    except links.LinkRefused:
        return render_template("portal/link_invalid.html", form=SignInForm()), 410
    person = load_customer(customer_id)
    if person is None:
        return render_template("portal/link_invalid.html", form=SignInForm()), 410
    session.clear()  # a fresh session: nothing from before signing in carries over
    session.permanent = True
    login_user(person)
    return redirect(url_for("portal.my_data"), 303)


@bp.post("/sign-out")
def sign_out() -> Response:
    logout_user()
    session.clear()
    return redirect(url_for("portal.signed_out"), 303)


@bp.get("/signed-out")
def signed_out() -> str:
    return render_template("portal/signed_out.html")
