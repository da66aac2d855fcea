"""Customer look-up: staff state a reason, then find a customer by email address or phone
number (posted, through the blind index) and open their file by id.

A customer's file opens only after a look-up with a reason in this console session
(Art. 5(2), 32(4)): a link straight to it asks for the reason first. Decrypted personal
fields only for roles with ``customers:personal``; the others see ids, consents, requests.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from flask import Response, abort, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response as WerkzeugResponse

from consent.errors import UnknownPurpose
from privacy_hub.console import actor, bp, me, requires
from privacy_hub.console.lookup_forms import LookupForm, ReasonForm
from privacy_hub.usecases import accountability, lookups
from privacy_hub.usecases.errors import Invalid, NotFound
from privacy_hub.vault.errors import CustomerNotFound
from privacy_hub.web.context import db, hub

#: the console session remembers this many looked-up customers (the newest)
REMEMBERED = 20
_SESSION_KEY = "looked_up"

#: the use case's messages in the page's language
_MESSAGES = {
    lookups.NO_CATEGORY: _l("Choose why you look this customer up."),
    lookups.TOO_SHORT: _l("Describe the reason in at least three words."),
    lookups.TOO_LONG: _l("Keep the reason under 500 characters."),
    lookups.ADDRESS_IN_REASON: _l("Leave email addresses out of the reason: name the ticket "
                                  "or request number instead."),
    lookups.BAD_EMAIL: _l("This is not a valid email address."),
    lookups.BAD_PHONE: _l("This is neither an email address nor a phone number with its "
                          "country code (+49 …)."),
}


def _remembered() -> list[str]:
    kept = session.get(_SESSION_KEY)
    if not isinstance(kept, dict) or kept.get("staff") != me().staff_id:
        return []
    return [str(i) for i in kept.get("ids", [])]


def _remember(ids: list[str]) -> None:
    kept = [i for i in _remembered() if i not in ids] + ids
    session[_SESSION_KEY] = {"staff": me().staff_id, "ids": kept[-REMEMBERED:]}


def _looked_up(customer_id: object) -> bool:
    return str(customer_id) in _remembered()


def _field_errors(form: Any, exc: Invalid) -> None:
    for name, messages in exc.errors.items():
        field = getattr(form, name, None)
        if field is not None:
            field.errors = list(field.errors) + [str(_MESSAGES.get(m, m)) for m in messages]


@bp.route("/customers/", methods=["GET", "POST"])
@requires("customers:lookup")
def customer_lookup() -> str | WerkzeugResponse | tuple[str, int]:
    """The reason first, then an email address or phone number; the match opens by id."""
    form = LookupForm()
    if form.validate_on_submit():
        try:
            ids = lookups.look_up(hub(), db(), form.identifier.data,
                                  reason_category=form.reason_category.data,
                                  reason_text=form.reason_text.data, actor=actor())
        except Invalid as exc:
            _field_errors(form, exc)
        else:
            _remember(ids)
            if len(ids) == 1:
                return redirect(url_for("console.customer", customer_id=ids[0]), 303)
            # Not found: said on the page; the searched value stays out of any URL.
            form.identifier.data = ""
            return render_template("console/customer_lookup.html", nav="customers", form=form,
                                   matches=ids, searched=True)
    return render_template("console/customer_lookup.html", nav="customers", form=form,
                           matches=[], searched=False), (422 if form.errors else 200)


def _reason_page(customer_id: object, form: ReasonForm, status: int) -> tuple[str, int]:
    return render_template("console/customer_reason.html", nav="customers", form=form,
                           customer_id=str(customer_id)), status


@bp.get("/customers/<uuid:customer_id>")
@requires("customers:lookup")
def customer(customer_id: object) -> str | tuple[str, int]:
    """The customer's file, once looked up with a reason in this session."""
    if not _looked_up(customer_id):
        return _reason_page(customer_id, ReasonForm(), 200)
    try:
        file = lookups.customer_file(hub(), db(), str(customer_id),
                                     personal=me().can("customers:personal"), actor=actor())
    except NotFound:
        abort(404)
    consenting = [c for c in file["consents"] if c["legal_basis"] == "consent"]
    return render_template("console/customer.html", nav="customers", file=file,
                           customer_id=str(customer_id), consenting=consenting,
                           purpose=request.args.get("purpose", ""))


@bp.post("/customers/<uuid:customer_id>/reason")
@requires("customers:lookup")
def customer_reason(customer_id: object) -> WerkzeugResponse | tuple[str, int]:
    """Open a customer's file by id, for a stated reason (audited as a look-up)."""
    form = ReasonForm()
    if not form.validate_on_submit():
        return _reason_page(customer_id, form, 422)
    try:
        cid = lookups.open_by_id(hub(), db(), str(customer_id),
                                 reason_category=form.reason_category.data,
                                 reason_text=form.reason_text.data, actor=actor())
    except NotFound:
        abort(404)
    except Invalid as exc:
        _field_errors(form, exc)
        return _reason_page(customer_id, form, 422)
    _remember([cid])
    return redirect(url_for("console.customer", customer_id=cid), 303)


@bp.get("/customers/<uuid:customer_id>/receipts/<receipt_id>")
@requires("customers:lookup")
def customer_receipt(customer_id: object, receipt_id: str) -> str | WerkzeugResponse:
    """A signed receipt of one of the customer's decisions, with its JWS."""
    if not _looked_up(customer_id):
        return redirect(url_for("console.customer", customer_id=customer_id), 303)
    try:
        found = lookups.receipt(db(), str(customer_id), receipt_id)
    except NotFound:
        abort(404)
    return render_template("console/customer_receipt.html", nav="customers",
                           customer_id=str(customer_id), found=found,
                           pretty=json.dumps(found["receipt"], indent=2, ensure_ascii=False))


@bp.get("/customers/<uuid:customer_id>/evidence")
@requires("audit:read")
def customer_evidence(customer_id: object) -> Response | WerkzeugResponse:
    """The evidence pack for one purpose as a JSON download (R-AUD-03; audited)."""
    if not _looked_up(customer_id):
        return redirect(url_for("console.customer", customer_id=customer_id), 303)
    purpose = request.args.get("purpose", "")
    if not purpose or len(purpose) > 100:
        abort(404)
    try:
        pack = accountability.evidence_pack(hub(), db(), str(customer_id), purpose,
                                            actor=actor(), export_format="json")
    except (NotFound, CustomerNotFound, UnknownPurpose):
        abort(404)
    name = f"evidence-{pack['customer_id']}-{pack['purpose']}.json"
    return Response(json.dumps(pack, indent=2, ensure_ascii=False), mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def status_words() -> dict[str, str]:
    """Consent states in words, for the page's language."""
    return {"granted": _("granted"), "withdrawn": _("withdrawn"), "refused": _("refused"),
            "pending_confirmation": _("waiting for confirmation"), "expired": _("expired"),
            "reconsent_required": _("to be asked again (purpose changed)"),
            "not_set": _("no decision"),
            # a purpose on another legal basis (contract, legal obligation, legitimate
            # interests) asks for no decision: Art. 6(1)(b)-(f) GDPR
            "not_needed": _("no consent needed")}


@bp.app_template_filter("parse_rfc3339")
def parse_rfc3339(value: str | None) -> datetime | None:
    """An RFC 3339 time as the use cases give it, for Flask-Babel's datetimeformat."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def request_words() -> dict[str, dict[str, str]]:
    """Request types and statuses as staff name them (the portal words them for customers)."""
    return {"types": {"access": _("Access (Art. 15)"), "portability": _("Portability (Art. 20)"),
                      "erasure": _("Erasure (Art. 17)"),
                      "rectification": _("Rectification (Art. 16)"),
                      "restriction": _("Restriction (Art. 18)"),
                      "objection": _("Objection (Art. 21)")},
            "statuses": {"pending_verification": _("identity not yet verified"),
                         "verified": _("verified"), "processing": _("in progress"),
                         "completed": _("completed"), "rejected": _("rejected"),
                         "cancelled": _("cancelled")}}


@bp.context_processor
def _lookup_words() -> dict[str, object]:
    return {"consent_words": status_words(), "request_words": request_words()}
