"""The landing page of the inactivity mail's "keep my account" link (R-RET-02).

Opening the link only shows a button (mail scanners open links, and must not use them
up); pressing it keeps the account. No sign-in is needed: the signed link is the proof.
"""

from __future__ import annotations

from flask import render_template, request
from werkzeug.wrappers import Response

from privacy_hub.portal import bp
from privacy_hub.portal.forms import LinkForm
from privacy_hub.usecases import inactivity
from privacy_hub.web.context import db, hub


@bp.get("/keep")
def keep_account() -> tuple[str, int]:
    token = request.args.get("token", "")
    if not inactivity.keep_link_valid(hub(), db(), token):
        return render_template("portal/keep.html", state="invalid"), 410
    return render_template("portal/keep.html", state="ask", form=LinkForm(token=token)), 200


@bp.post("/keep")
def keep_account_confirm() -> Response | tuple[str, int]:
    form = LinkForm()
    if not form.validate_on_submit():
        return render_template("portal/keep.html", state="invalid"), 410
    try:
        inactivity.keep_account(hub(), db(), form.token.data)
    except inactivity.LinkRefused:
        return render_template("portal/keep.html", state="invalid"), 410
    return render_template("portal/keep.html", state="kept"), 200
