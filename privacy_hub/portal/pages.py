"""What a signed-in customer sees and decides: their data, their choices, their history."""

from __future__ import annotations

import json

from flask import Response, abort, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_login import current_user
from werkzeug.wrappers import Response as Redirect

from privacy_hub.portal import bp
from privacy_hub.portal.forms import ActionForm
from privacy_hub.usecases import customers, subject
from privacy_hub.usecases.errors import NotFound
from privacy_hub.web.context import db, gpc_signal, hub


def _me() -> str:
    return str(current_user.customer_id)


def _language() -> str:
    return str(get_locale() or "en")



@bp.get("/data")
def my_data() -> str:
    """Everything the vault holds about the customer, decrypted for them (audited)."""
    actor = subject.audit_actor(_me())
    return render_template("portal/my_data.html", nav="data",
                           profile=customers.read(hub(), db(), _me(), actor=actor),
                           statements=customers.statements(hub(), db(), _me(), actor=actor))


@bp.get("/choices")
def choices() -> str:
    """Every consent purpose, what it uses and who gets it, with one control each."""
    view = subject.choices(db(), _me(), _language())
    return render_template("portal/choices.html", form=ActionForm(), gpc=gpc_signal(),
                           gpc_conflicts=view["granted_sharing"] if gpc_signal() else [],
                           nav="choices", recorded=request.args.get("recorded"), **view)


def _decide(purposes: list[str], page: str) -> None:
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        subject.decide(hub(), db(), _me(), purposes, request.form.get("granted") == "1",
                       language=_language(), gpc=gpc_signal(),
                       evidence={"page": page, "user_agent": request.user_agent.string[:300]})
    except NotFound:
        abort(404)


@bp.post("/choices/<string:key>")
def decide(key: str) -> Redirect:
    """One purpose allowed or refused: one press of one button either way."""
    _decide([key], "portal/choices")
    return redirect(url_for("portal.choices", recorded=key) + f"#purpose-{key}", 303)


@bp.post("/choices")
def decide_all() -> Redirect:
    """"Allow all" and "Refuse all", side by side with equal weight (R-CONSENT-08)."""
    _decide([p.key for p in subject.consent_purposes(db())], "portal/choices#all")
    return redirect(url_for("portal.choices", recorded="all"), 303)


@bp.get("/why")
def processing() -> str:
    """Purposes on other legal bases, with the basis, and the right to object apart
    (Art. 21(4): explicitly, clearly and separately)."""
    return render_template("portal/processing.html", nav="why",
                           **subject.processing(db(), _language()))


@bp.get("/history")
def history() -> str:
    """Every decision, newest first, with its signed receipt."""
    return render_template("portal/history.html", nav="history",
                           **subject.history(db(), _me(), _language()))


@bp.get("/receipts/<string:receipt_id>.json")
def receipt(receipt_id: str) -> Response:
    """A receipt of the customer's own decision: its fields and the JWS that signs them."""
    try:
        found = subject.receipt(db(), _me(), receipt_id)
    except NotFound:
        abort(404)
    body = json.dumps({**found, "verify_with": hub().settings.base_url + "/api/v1/keys/receipts"},
                      ensure_ascii=False, indent=2)
    return Response(body, mimetype="application/json", headers={
        "Content-Disposition": f'attachment; filename="receipt-{receipt_id}.json"'})
