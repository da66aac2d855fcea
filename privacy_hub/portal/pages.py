"""What a signed-in customer sees and does: their data, their choices, their history."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, abort, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_login import current_user
from werkzeug.wrappers import Response as Redirect

import audit
from consent import ledger as consent_ledger
from consent import notices
from consent import purposes as registry
from consent.ledger import Decision
from consent.purposes import LegalBasis, Purpose
from privacy_hub.portal import bp
from privacy_hub.portal.forms import ActionForm
from privacy_hub.web.context import db, hub

#: the statuses under which a purpose may use the customer's data
IN_FORCE = ("granted",)


def _me() -> str:
    return str(current_user.customer_id)


def _actor() -> audit.Actor:
    return audit.Actor("customer", _me())


def _gpc() -> bool:
    """Global Privacy Control: exactly "1" in any Sec-GPC header (GPC spec)."""
    return "1" in [v.strip() for v in request.headers.getlist("Sec-GPC")]


@bp.get("/data")
def my_data() -> str:
    """Everything the vault holds about the customer, decrypted for them (audited)."""
    cid = _me()
    profile = hub().vault.read(db(), cid, actor=_actor())
    statements = hub().vault.statements(db(), cid)
    return render_template("portal/my_data.html", profile=profile, statements=statements,
                           nav="data")


def _consent_purposes() -> list[Purpose]:
    return [p for p in registry.all_purposes(db()) if p.legal_basis is LegalBasis.CONSENT]


def _states() -> dict[str, dict[str, Any]]:
    return {s["purpose"]: s for s in consent_ledger.current_states(db(), _me())}


@bp.get("/choices")
def choices() -> str:
    """Every consent purpose, what it uses and who gets it, with one control each."""
    language = str(get_locale() or "en")
    notice = notices.latest(db(), language)
    states = _states()
    purposes = _consent_purposes()
    granted_sharing = [p for p in purposes if p.sale_or_sharing
                       and states[p.key]["status"] in IN_FORCE]
    return render_template("portal/choices.html", purposes=purposes, states=states,
                           notice=notice, form=ActionForm(), gpc=_gpc(),
                           gpc_conflicts=granted_sharing if _gpc() else [], nav="choices",
                           recorded=request.args.get("recorded"))


def _decide(purpose: Purpose, granted: bool, page: str) -> None:
    notice = notices.latest(db(), str(get_locale() or "en"))
    evidence: dict[str, Any] = {"page": page, "user_agent": request.user_agent.string[:300],
                                "notice_version": notice.version if notice else None}
    if _gpc():
        evidence["gpc"] = True
    hub().ledger.record(db(), _me(), Decision(
        purpose=purpose.key, granted=granted, source="portal", collection_method="portal_form",
        notice_version=notice.version if notice else None,
        notice_language=notice.language if notice else "en",
        consent_type="explicit" if purpose.special_category else "regular",
        evidence=evidence), actor=_actor())


@bp.post("/choices/<string:key>")
def decide(key: str) -> Redirect:
    """One purpose allowed or refused: one press of one button either way."""
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    purpose = next((p for p in _consent_purposes() if p.key == key), None)
    if purpose is None:
        abort(404)
    granted = request.form.get("granted") == "1"
    _decide(purpose, granted, "portal/choices")
    return redirect(url_for("portal.choices", recorded=key) + f"#purpose-{key}", 303)


@bp.post("/choices")
def decide_all() -> Redirect:
    """"Allow all" and "Refuse all", side by side with equal weight (R-CONSENT-08)."""
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    granted = request.form.get("granted") == "1"
    states = _states()
    for purpose in _consent_purposes():
        if (states[purpose.key]["status"] in IN_FORCE) != granted:
            _decide(purpose, granted, "portal/choices#all")
    return redirect(url_for("portal.choices", recorded="all"), 303)


@bp.get("/why")
def processing() -> str:
    """Purposes on other legal bases, with the basis, and the right to object apart
    (Art. 21(4): explicitly, clearly and separately)."""
    others = [p for p in registry.all_purposes(db()) if p.legal_basis is not LegalBasis.CONSENT]
    states = _states()
    objectable = [p for p in others if p.direct_marketing
                  or p.legal_basis is LegalBasis.LEGITIMATE_INTERESTS]
    return render_template("portal/processing.html", purposes=others, states=states,
                           objectable=objectable, nav="why")


@bp.get("/history")
def history() -> str:
    """Every decision, newest first, with its signed receipt."""
    events = list(reversed(consent_ledger.history(db(), _me())))
    titles = {p.key: p.title for p in registry.all_purposes(db())}
    return render_template("portal/history.html", events=events, titles=titles, nav="history")


@bp.get("/receipts/<string:receipt_id>.json")
def receipt(receipt_id: str) -> Response:
    """A receipt of the customer's own decision: its fields and the JWS that signs them."""
    found = consent_ledger.receipt(db(), receipt_id)
    if found is None or found.customer_id != _me():
        abort(404)
    body = json.dumps({"receipt_id": found.id, "receipt": json.loads(found.payload),
                       "jws": found.jws,
                       "verify_with": hub().settings.base_url + "/api/v1/keys/receipts"},
                      ensure_ascii=False, indent=2)
    response = Response(body, mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="receipt-{receipt_id}.json"'
    return response

