"""Public pages reached from emails: confirming a double opt-in.

No JavaScript, no cookies. Opening the link only shows a button: mail scanners that
prefetch links must not confirm anything; the POST does.
"""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Blueprint, render_template, request
from sqlalchemy.orm import Session

import audit
from consent import purposes as registry
from consent.errors import TokenInvalid, UnknownPurpose
from consent.ledger import Decision
from consent.models import ConfirmationToken
from privacy_hub.unsubscribe import InvalidLink, read_token
from privacy_hub.web.context import db, hub

bp = Blueprint("pages", __name__)


def _context() -> dict[str, str]:
    s = hub().settings
    return {"controller_name": s.controller_name, "policy_url": s.controller_policy_url}


def _pending_title(session: Session, token: str) -> str | None:
    row = session.get(ConfirmationToken, hashlib.sha256(token.encode()).digest())
    if row is None or row.used_at is not None:
        return None
    return registry.get(session, row.purpose).title


def _invalid(heading: str = "This link is no longer valid",
             message: str = "It was already used, has expired, or was replaced by a newer "
             "choice. Nothing was changed.", status: int = 410) -> tuple[str, int]:
    return render_template("pages/message.html", heading=heading, message=message,
                           **_context()), status


def _unsubscribe_target(token: str) -> tuple[str, str, str] | None:
    try:
        customer_id, purpose = read_token(hub().keyring.hub_key(db(), "app_secrets"), token)
        title = registry.get(db(), purpose).title
    except (InvalidLink, UnknownPurpose):
        return None
    return customer_id, purpose, title


@bp.get("/unsubscribe/<string:token>")
def show_unsubscribe(token: str) -> tuple[str, int]:
    target = _unsubscribe_target(token)
    if target is None:
        return _invalid("This link is not valid", "Nothing was changed.", 404)
    return render_template("pages/unsubscribe.html", token=token, purpose_title=target[2],
                           **_context()), 200


@bp.post("/unsubscribe/<string:token>")
def unsubscribe(token: str) -> tuple[str, int]:
    """One step, no login (also RFC 8058 ``List-Unsubscribe=One-Click`` POSTs)."""
    target = _unsubscribe_target(token)
    if target is None:
        return _invalid("This link is not valid", "Nothing was changed.", 404)
    customer_id, purpose, title = target
    row = hub().vault.get_row(db(), customer_id) if _known(customer_id) else None
    if row is not None and row.status != "erased":
        hub().ledger.record(db(), customer_id, Decision(
            purpose=purpose, granted=False, source="unsubscribe_link",
            collection_method="email_unsubscribe"), actor=audit.Actor("customer", customer_id))
    return render_template("pages/message.html", heading="You are unsubscribed",
                           message=f"You will no longer receive {title}.", **_context()), 200


def _known(customer_id: str) -> bool:
    from privacy_hub.vault.errors import CustomerNotFound

    try:
        hub().vault.get_row(db(), customer_id)
    except CustomerNotFound:
        return False
    return True


@bp.get("/consent/confirm")
def show_confirmation() -> tuple[str, int]:
    token = request.args.get("token", "")
    title = _pending_title(db(), token) if 10 <= len(token) <= 200 else None
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
        recorded = hub().ledger.confirm(db(), token)
    except TokenInvalid:
        return _invalid()
    title = registry.get(db(), recorded.purpose).title
    return render_template("pages/message.html", heading="Thank you: confirmed",
                           message=f"You will now receive {title}. You can withdraw at any "
                           "time.", **_context()), 200


@bp.get("/requests/<string:request_id>/verify")
def show_request_verification(request_id: str) -> tuple[str, int]:
    token = request.args.get("token", "")
    return render_template("pages/verify_request.html", request_id=request_id, token=token,
                           **_context()), 200


@bp.post("/requests/<string:request_id>/verify")
def verify_request(request_id: str) -> tuple[str, int]:
    from dsar.errors import VerificationFailed
    from privacy_hub.api.requests import service

    try:
        service().verify_with_token(db(), request_id, request.form.get("token", ""))
    except VerificationFailed:
        return _invalid()
    return render_template("pages/message.html", heading="Thank you: your request is confirmed",
                           message="We are working on it and will answer within one month.",
                           **_context()), 200


@bp.get("/exports/<string:token>")
def download_export(token: str) -> Any:
    """The subject's signed, expiring link to their data (no login)."""
    from flask import Response

    from audit.clock import utcnow
    from privacy_hub.rights.exports import ExportGone, Exports

    exports = Exports(hub())
    try:
        request_id = exports.request_for_token(db(), token, utcnow())
        archive = exports.read(db(), request_id)
    except ExportGone:
        return _invalid("This download link is no longer valid",
                        "Links work for 7 days and files are kept for 30. Ask again any time.")
    audit.record(db(), actor=audit.Actor("customer", None), action="export.downloaded",
                 details={"request_id": request_id, "via": "link"})
    return Response(archive, mimetype="application/zip", headers={
        "Content-Disposition": f'attachment; filename="my-data-{request_id[:8]}.zip"',
        "Cache-Control": "no-store"})
