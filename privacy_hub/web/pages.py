"""Public pages reached from emails: confirming a double opt-in, unsubscribing, verifying
a request, downloading an export.

No JavaScript, no cookies. Opening the link only shows a button: mail scanners that
prefetch links must not confirm anything; the POST does.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, render_template, request
from flask_babel import get_locale
from flask_babel import gettext as _

from consent.errors import TokenInvalid
from dsar.errors import VerificationFailed
from privacy_hub.usecases import consents, requests
from privacy_hub.usecases.errors import Gone
from privacy_hub.web.context import db, hub

bp = Blueprint("pages", __name__)


def _context() -> dict[str, str]:
    s = hub().settings
    return {"controller_name": s.controller_name, "policy_url": s.controller_policy_url}


def _language() -> str:
    """The page's language (the person's choice, else their browser's)."""
    return str(get_locale() or "en")


def _invalid(heading: str | None = None, message: str | None = None,
             status: int = 410) -> tuple[str, int]:
    return render_template(
        "pages/message.html", heading=heading or _("This link is no longer valid"),
        message=message or _("It was already used, has expired, or was replaced by a newer "
                             "choice. Nothing was changed."), **_context()), status


@bp.get("/unsubscribe/<string:token>")
def show_unsubscribe(token: str) -> tuple[str, int]:
    target = consents.unsubscribe_target(hub(), db(), token, _language())
    if target is None:
        return _invalid(_("This link is not valid"), _("Nothing was changed."), 404)
    return render_template("pages/unsubscribe.html", token=token, purpose_title=target[2],
                           **_context()), 200


@bp.post("/unsubscribe/<string:token>")
def unsubscribe(token: str) -> tuple[str, int]:
    """One step, no login (also RFC 8058 ``List-Unsubscribe=One-Click`` POSTs)."""
    target = consents.unsubscribe_target(hub(), db(), token, _language())
    if target is None:
        return _invalid(_("This link is not valid"), _("Nothing was changed."), 404)
    customer_id, purpose, title = target
    consents.unsubscribe(hub(), db(), customer_id, purpose)
    return render_template("pages/message.html", heading=_("You are unsubscribed"),
                           message=_("You will no longer receive %(title)s.", title=title),
                           **_context()), 200


@bp.get("/consent/confirm")
def show_confirmation() -> tuple[str, int]:
    token = request.args.get("token", "")
    title = (consents.pending_confirmation(db(), token, _language())
             if 10 <= len(token) <= 200 else None)
    if title is None:
        return _invalid()
    return render_template("pages/confirm.html", token=token, purpose_title=title,
                           **_context()), 200


@bp.post("/consent/confirm")
def confirm_consent() -> tuple[str, int]:
    token = request.form.get("token", "")
    try:
        if not 10 <= len(token) <= 200:
            raise TokenInvalid("malformed token")
        recorded = consents.confirm(hub(), db(), token)
    except TokenInvalid:
        return _invalid()
    title = consents.purpose_title(db(), recorded["purpose"], _language())
    return render_template("pages/message.html", heading=_("Thank you: confirmed"),
                           message=_("You will now receive %(title)s. You can withdraw at any "
                                     "time.", title=title), **_context()), 200


@bp.get("/requests/<string:request_id>/verify")
def show_request_verification(request_id: str) -> tuple[str, int]:
    token = request.args.get("token", "")
    return render_template("pages/verify_request.html", request_id=request_id, token=token,
                           **_context()), 200


@bp.post("/requests/<string:request_id>/verify")
def verify_request(request_id: str) -> tuple[str, int]:
    try:
        requests.verify_with_token(hub(), db(), request_id, request.form.get("token", ""))
    except VerificationFailed:
        return _invalid()
    return render_template("pages/message.html",
                           heading=_("Thank you: your request is confirmed"),
                           message=_("We are working on it and will answer within one month."),
                           **_context()), 200


@bp.get("/exports/<string:token>")
def download_export(token: str) -> Any:
    """The subject's signed, expiring link to their data (no login)."""
    try:
        request_id, archive = requests.download_by_link(hub(), db(), token)
    except Gone:
        return _invalid(_("This download link is no longer valid"),
                        _("Links work for 7 days and files are kept for 30. Ask again any "
                          "time."))
    return Response(archive, mimetype="application/zip", headers={
        "Content-Disposition": f'attachment; filename="my-data-{request_id[:8]}.zip"',
        "Cache-Control": "no-store"})
