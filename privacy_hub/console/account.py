"""Signing in with a password and a TOTP code, and signing out.

One answer for a wrong address, password or code and for a disabled account (and the
same argon2 work behind it); after repeated failures the address is locked for a while,
whether or not it belongs to anyone.
"""

from __future__ import annotations

from flask import g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from privacy_hub.console import bp, load_staff
from privacy_hub.console.forms import SignInForm
from privacy_hub.staff.accounts import LOCKOUT, MAX_FAILURES, normalise_email
from privacy_hub.usecases import staff as staff_cases
from privacy_hub.web.context import db, hub, limiter

#: sign-in attempts per client address in LOCKOUT
PER_CLIENT = 30


def _locked_message(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return str(_("Too many failed sign-ins. Try again in %(minutes)d minutes.", minutes=minutes))


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> str | Response | tuple[str, int]:
    """Email, password and code in; the console out, or one answer for every failure."""
    if current_user.is_authenticated:
        return redirect(url_for("console.home"))
    form = SignInForm()
    if not form.validate_on_submit():
        return render_template("console/sign_in.html", form=form), 422 if form.errors else 200
    window = LOCKOUT.total_seconds()
    wait = limiter().hit("console-client|" + (request.remote_addr or "?"), limit=PER_CLIENT,
                         window=window)
    if wait is not None:
        form.form_errors.append(_locked_message(wait))
        return render_template("console/sign_in.html", form=form), 429
    g.commit_on_error = True  # a failed attempt is counted and audited
    try:
        found = staff_cases.sign_in(hub(), db(), email=form.email.data,
                                    password=form.password.data, code=form.code.data)
    except staff_cases.SignInRefused as refused:
        # Counted per address too, known or not, so an unknown one locks like a real one.
        wait = limiter().hit("console-address|" + normalise_email(form.email.data),
                             limit=MAX_FAILURES - 1, window=window)
        if refused.locked_for is not None:
            wait = refused.locked_for.total_seconds()
        form.form_errors.append(_locked_message(wait) if wait is not None else _(
            "That did not work. Check your email address, password and code, and try again."))
        form.password.data = form.code.data = ""
        return render_template("console/sign_in.html", form=form), 401
    person = load_staff(found["id"])
    if person is None:  # disabled between the check and now
        return redirect(url_for("console.sign_in"), 303)
    session.clear()  # a fresh session: nothing from before signing in carries over
    session.permanent = True
    login_user(person)
    return redirect(url_for("console.home"), 303)


@bp.post("/sign-out")
def sign_out() -> Response:
    logout_user()
    session.clear()
    return redirect(url_for("console.signed_out"), 303)


@bp.get("/signed-out")
def signed_out() -> str:
    return render_template("console/signed_out.html")
