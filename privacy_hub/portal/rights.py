"""The customer's rights from the portal: access and portability downloads, erasure,
restriction, objection and rectification, each a data subject request that the signed-in
session verifies at once (R-DSAR-03), followed to its end on the Requests page."""

from __future__ import annotations

import contextlib
from typing import Any

from flask import Response, abort, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user, logout_user
from werkzeug.wrappers import Response as Redirect

from dsar.errors import InvalidRequest
from dsar.workflow import TransitionRefused
from privacy_hub.portal import bp
from privacy_hub.portal.forms import ActionForm
from privacy_hub.usecases import customers, subject
from privacy_hub.usecases.errors import Gone, Invalid, NotFound
from privacy_hub.vault.errors import DuplicateIdentifier, InvalidCustomerData
from privacy_hub.web.context import db, hub

#: fields a customer may correct from the portal, in the order the form shows them
CORRECTABLE = ("first_name", "last_name", "phone", "birth_date")
ADDRESS_PARTS = ("line1", "line2", "postal_code", "city", "country")


def _me() -> str:
    return str(current_user.customer_id)


def _language() -> str:
    return str(get_locale() or "en")


def _checked() -> ActionForm:
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    return form


@bp.get("/requests")
def requests() -> str:
    return render_template("portal/requests.html", items=subject.requests(db(), _me()),
                           open_statuses=subject.open_statuses(), form=ActionForm(),
                           nav="requests", done=request.args.get("done"))


@bp.post("/requests/<string:request_id>/cancel")
def cancel_request(request_id: str) -> Redirect:
    _checked()
    # A request that finished meanwhile stays as it ended; the page shows how.
    with contextlib.suppress(TransitionRefused):
        try:
            subject.cancel_request(hub(), db(), _me(), request_id)
        except NotFound:
            abort(404)
    return redirect(url_for("portal.requests"), 303)


# -- access and portability -------------------------------------------------------------------
@bp.get("/download")
def download() -> str:
    return render_template("portal/download.html", form=ActionForm(), nav="download",
                           **subject.downloads(db(), _me()))


@bp.post("/download")
def start_download() -> Redirect:
    _checked()
    kind = request.form.get("kind")
    if kind not in ("access", "portability"):
        abort(400)
    subject.file_request(hub(), db(), _me(), kind, language=_language())
    return redirect(url_for("portal.download"), 303)


@bp.get("/download/<string:request_id>.zip")
def download_zip(request_id: str) -> Response:
    try:
        archive = subject.export(hub(), db(), _me(), request_id)
    except NotFound:
        abort(404)
    except Gone:
        abort(410)
    return Response(archive, mimetype="application/zip", headers={
        "Content-Disposition": f'attachment; filename="my-data-{request_id[:8]}.zip"'})


# -- erasure ----------------------------------------------------------------------------------
@bp.get("/erase")
def erase() -> str:
    """What erasure means, and what stays by law; then "check your answers"."""
    return render_template("portal/erase.html", holds=subject.erasure_holds(db(), _language()),
                           form=ActionForm(), nav="requests")


@bp.post("/erase")
def confirm_erase() -> str | tuple[str, int]:
    _checked()
    if request.form.get("confirm") != "erase":
        return render_template("portal/erase.html", holds=subject.erasure_holds(db(), _language()),
                               form=ActionForm(), nav="requests", error=True), 422
    req = subject.file_request(hub(), db(), _me(), "erasure", language=_language())
    logout_user()  # the customer no longer exists here: their session ends with them
    # The outcome records the default titles; the page names them in its own language.
    titles = {h["purpose"]: h["title"] for h in subject.erasure_holds(db(), _language())}
    return render_template("portal/erased.html", request_id=req["id"], titles=titles,
                           outcome=req["outcome"] or {}, status=req["status"])


# -- restriction, objection, rectification ----------------------------------------------------------
@bp.route("/restrict", methods=["GET", "POST"])
def restrict() -> str | Redirect | tuple[str, int]:
    error = None
    if request.method == "POST":
        _checked()
        ground = request.form.get("ground")
        if ground in subject.RESTRICTION_GROUNDS:
            subject.file_request(hub(), db(), _me(), "restriction", {"ground": ground},
                                 language=_language())
            return redirect(url_for("portal.requests", done="restriction"), 303)
        error = _("Choose why you want the use of your data restricted.")
    return render_template("portal/restrict.html", form=ActionForm(), grounds=subject.RESTRICTION_GROUNDS,
                           error=error, nav="requests"), 422 if error else 200


@bp.route("/object", methods=["GET", "POST"])
def object_to() -> str | Redirect | tuple[str, int]:
    purposes = subject.objectable(db(), _language())
    error = None
    if request.method == "POST":
        _checked()
        chosen = request.form.getlist("purpose")
        if chosen and set(chosen) <= {p.key for p in purposes}:
            subject.file_request(hub(), db(), _me(), "objection", {"purposes": chosen},
                                 language=_language())
            return redirect(url_for("portal.requests", done="objection"), 303)
        error = _("Choose at least one use of your data you object to.")
    return render_template("portal/object.html", form=ActionForm(), purposes=purposes,
                           error=error, nav="requests"), 422 if error else 200


@bp.route("/data/correct", methods=["GET", "POST"])
def correct() -> str | Redirect | tuple[str, int]:
    profile = customers.read(hub(), db(), _me(), actor=subject.audit_actor(_me()))
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        _checked()
        changes = _changes(profile)
        if not changes:
            errors["form"] = [_("Change at least one field, or go back.")]
        else:
            try:
                subject.correct(hub(), db(), _me(), changes, language=_language())
            except (Invalid, InvalidRequest, InvalidCustomerData) as exc:
                errors = {k.split(".")[-1]: list(v) for k, v in exc.errors.items()}
            except DuplicateIdentifier as exc:
                errors = {exc.field: [_("Another customer account already uses this.")]}
            else:
                return redirect(url_for("portal.requests", done="rectification"), 303)
    return render_template("portal/correct.html", form=ActionForm(), profile=profile,
                           errors=errors, fields=CORRECTABLE, address_parts=ADDRESS_PARTS,
                           nav="data"), 422 if errors else 200


def _changes(profile: dict[str, Any]) -> dict[str, Any]:
    """What the form changes, by the profile's field names (an empty field removes it)."""
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
