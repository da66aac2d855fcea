"""The customer's rights from the portal: access and portability downloads, erasure,
restriction, objection and rectification, each a data subject request that the signed-in
session verifies at once (R-DSAR-03), followed to its end on the Requests page."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import marshmallow as ma
from flask import Response, abort, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, logout_user
from sqlalchemy import select
from werkzeug.wrappers import Response as Redirect

import audit
from consent import purposes as registry
from consent.flags import RESTRICTION_GROUNDS
from consent.purposes import LegalBasis
from dsar.errors import InvalidRequest
from dsar.models import DataSubjectRequest
from dsar.workflow import FINAL, TransitionRefused
from privacy_hub.models import ExportFile
from privacy_hub.portal import bp
from privacy_hub.portal.forms import ActionForm
from privacy_hub.rights.adapters import requests_service
from privacy_hub.rights.exports import ExportGone, Exports
from privacy_hub.schemas import CustomerPatchSchema
from privacy_hub.vault.errors import DuplicateIdentifier, InvalidCustomerData
from privacy_hub.web.context import db, hub

#: fields a customer may correct from the portal, in the order the form shows them
CORRECTABLE = ("first_name", "last_name", "phone", "birth_date")
ADDRESS_PARTS = ("line1", "line2", "postal_code", "city", "country")


def _me() -> str:
    return str(current_user.customer_id)


def _mine(request_id: str) -> DataSubjectRequest:
    req = db().get(DataSubjectRequest, request_id)
    if req is None or req.customer_id != _me():
        abort(404)
    return req


def _my_requests() -> list[dict[str, Any]]:
    rows = db().scalars(select(DataSubjectRequest)
                        .where(DataSubjectRequest.customer_id == _me())
                        .order_by(DataSubjectRequest.received_at.desc())).all()
    return requests_service(hub()).public_many(db(), rows)


def _submit(kind: str, details: dict[str, Any] | None = None) -> DataSubjectRequest:
    return requests_service(hub()).submit_signed_in(db(), customer_id=_me(), type=kind,
                                                    details=details)


@bp.get("/requests")
def requests() -> str:
    finals = {str(s) for s in FINAL}
    return render_template("portal/requests.html", items=_my_requests(), finals=finals,
                           form=ActionForm(), nav="requests",
                           done=request.args.get("done"))


@bp.post("/requests/<string:request_id>/cancel")
def cancel_request(request_id: str) -> Redirect:
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    _mine(request_id)
    # A request that finished meanwhile stays as it ended; the page shows how.
    with contextlib.suppress(TransitionRefused):
        requests_service(hub()).cancel(db(), request_id, actor=audit.Actor("customer", _me()),
                                       note="cancelled by the customer in the portal")
    return redirect(url_for("portal.requests"), 303)


# -- access and portability ----------------------------------------------------------------
@bp.get("/download")
def download() -> str:
    mine = [r for r in _my_requests() if r["type"] in ("access", "portability")]
    ready = {row.request_id: row for row in db().scalars(
        select(ExportFile).where(ExportFile.customer_id == _me(),
                                 ExportFile.deleted_at.is_(None)))}
    return render_template("portal/download.html", items=mine, ready=ready,
                           form=ActionForm(), nav="download")


@bp.post("/download")
def start_download() -> Redirect:
    form = ActionForm()
    kind = request.form.get("kind")
    if not form.validate_on_submit() or kind not in ("access", "portability"):
        abort(400)
    _submit(kind)
    return redirect(url_for("portal.download"), 303)


@bp.get("/download/<string:request_id>.zip")
def download_zip(request_id: str) -> Response:
    _mine(request_id)
    try:
        archive = Exports(hub()).read(db(), request_id)
    except ExportGone:
        abort(410)
    audit.record(db(), actor=audit.Actor("customer", _me()), action="export.downloaded",
                 customer_id=_me(), details={"request_id": request_id, "via": "portal"})
    return Response(archive, mimetype="application/zip", headers={
        "Content-Disposition": f'attachment; filename="my-data-{request_id[:8]}.zip"'})


# -- erasure ----------------------------------------------------------------------------------
def _holds() -> list[dict[str, Any]]:
    """What a legal duty keeps after an erasure, as the erasure itself decides it."""
    return [{"title": p.title, "categories": list(p.data_categories), "days": p.retention_days,
             "why": p.description}
            for p in registry.all_purposes(db())
            if p.legal_basis is LegalBasis.LEGAL_OBLIGATION and p.fields]


@bp.get("/erase")
def erase() -> str:
    """What erasure means, and what stays by law; then "check your answers"."""
    return render_template("portal/erase.html", holds=_holds(), form=ActionForm(),
                           nav="requests")


@bp.post("/erase")
def confirm_erase() -> str | tuple[str, int]:
    form = ActionForm()
    if not form.validate_on_submit() or request.form.get("confirm") != "erase":
        return render_template("portal/erase.html", holds=_holds(), form=form,
                               nav="requests", error=True), 422
    req = _submit("erasure")
    outcome = json.loads(req.outcome or "null") or {}
    logout_user()  # the customer no longer exists here: their session ends with them
    return render_template("portal/erased.html", request_id=req.id, outcome=outcome,
                           status=req.status)


# -- restriction, objection, rectification ----------------------------------------------------------
@bp.route("/restrict", methods=["GET", "POST"])
def restrict() -> str | Redirect | tuple[str, int]:
    form = ActionForm()
    error = None
    if request.method == "POST":
        ground = request.form.get("ground")
        if form.validate_on_submit() and ground in RESTRICTION_GROUNDS:
            _submit("restriction", {"ground": ground})
            return redirect(url_for("portal.requests", done="restriction"), 303)
        error = _("Choose why you want the use of your data restricted.")
    return render_template("portal/restrict.html", form=form, grounds=RESTRICTION_GROUNDS,
                           error=error, nav="requests"), 422 if error else 200


@bp.route("/object", methods=["GET", "POST"])
def object_to() -> str | Redirect | tuple[str, int]:
    form = ActionForm()
    purposes = [p for p in registry.all_purposes(db())
                if p.direct_marketing or p.legal_basis is LegalBasis.LEGITIMATE_INTERESTS]
    error = None
    if request.method == "POST":
        chosen = request.form.getlist("purpose")
        known = {p.key for p in purposes}
        if form.validate_on_submit() and chosen and set(chosen) <= known:
            _submit("objection", {"purposes": chosen})
            return redirect(url_for("portal.requests", done="objection"), 303)
        error = _("Choose at least one use of your data you object to.")
    return render_template("portal/object.html", form=form, purposes=purposes, error=error,
                           nav="requests"), 422 if error else 200


@bp.route("/data/correct", methods=["GET", "POST"])
def correct() -> str | Redirect | tuple[str, int]:
    form = ActionForm()
    profile = hub().vault.read(db(), _me(), actor=audit.Actor("customer", _me()))
    errors: dict[str, list[str]] = {}
    if request.method == "POST" and form.validate_on_submit():
        changes = _changes(profile)
        if not changes:
            errors["form"] = [_("Change at least one field, or go back.")]
        else:
            errors = _invalid(changes)
        if not errors:
            try:
                _submit("rectification", {"changes": changes})
            except (InvalidRequest, InvalidCustomerData) as exc:
                errors = {k.split(".")[-1]: list(v) for k, v in exc.errors.items()}
            except DuplicateIdentifier as exc:
                errors = {exc.field: [_("Another customer account already uses this.")]}
            else:
                return redirect(url_for("portal.requests", done="rectification"), 303)
    return render_template("portal/correct.html", form=form, profile=profile, errors=errors,
                           fields=CORRECTABLE, address_parts=ADDRESS_PARTS,
                           nav="data"), 422 if errors else 200


def _invalid(changes: dict[str, Any]) -> dict[str, list[str]]:
    """The API's rules for the same fields (CustomerPatchSchema), by form field."""
    try:
        CustomerPatchSchema().load(changes)
    except ma.ValidationError as exc:
        flat: dict[str, list[str]] = {}
        for name, messages in dict(exc.messages).items():  # type: ignore[arg-type]
            if isinstance(messages, dict):
                for part, inner in messages.items():
                    flat[f"address_{part}"] = [str(m) for m in inner]
            else:
                flat[str(name)] = [str(m) for m in messages]
        return flat
    return {}


def _changes(profile: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name in CORRECTABLE:
        value = request.form.get(name, "").strip()
        if value != (profile.get(name) or ""):
            changes[name] = value or None
    current = profile.get("address") or {}
    address = {part: request.form.get(f"address_{part}", "").strip() or None
               for part in ADDRESS_PARTS}
    if any(address.get(p) != current.get(p) for p in ADDRESS_PARTS):
        changes["address"] = {k: v for k, v in address.items() if v} or None
    return changes
