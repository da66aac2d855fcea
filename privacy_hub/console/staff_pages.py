"""Admins manage the console's staff: add someone, change a role, reset a lost
authenticator, disable an account. An enrolment (authenticator secret and recovery codes)
is shown once, on the page that answers the action, and never stored in clear."""

from __future__ import annotations

import segno
from flask import abort, redirect, render_template, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from privacy_hub.console import actor, bp, requires
from privacy_hub.console.forms import ActionForm, NewStaffForm, RoleForm
from privacy_hub.staff.accounts import Enrolment
from privacy_hub.usecases import staff as staff_cases
from privacy_hub.usecases.errors import Conflict, Invalid, NotFound
from privacy_hub.web.context import db, hub


def qr_svg(uri: str) -> str:
    """The otpauth URI as a QR code, an SVG data URI drawn on the server (no script)."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=5, border=2))


def _enrolment_page(enrolment: Enrolment, member: dict[str, object], *, new: bool) -> str:
    return render_template("console/staff_enrolment.html", nav="staff", member=member,
                           enrolment=enrolment, qr=qr_svg(enrolment.totp_uri), new=new)


@bp.get("/staff/")
@requires("staff:manage")
def staff_list() -> str:
    members = staff_cases.all_staff(hub(), db())
    return render_template("console/staff_list.html", nav="staff", members=members)


@bp.route("/staff/new", methods=["GET", "POST"])
@requires("staff:manage")
def staff_new() -> str | tuple[str, int]:
    form = NewStaffForm()
    if form.validate_on_submit():
        try:
            member, enrolment = staff_cases.create(
                hub(), db(), email=form.email.data, role=form.role.data,
                password=form.password.data, actor=actor())
        except Invalid as exc:
            for name, messages in exc.errors.items():
                getattr(form, name).errors = list(getattr(form, name).errors) + messages
        except Conflict:
            form.email.errors = [*form.email.errors,
                                 _("A staff member with this email address exists already.")]
        else:
            return _enrolment_page(enrolment, member, new=True)
    return render_template("console/staff_new.html", nav="staff", form=form), (
        422 if form.errors else 200)


def _member(staff_id: str) -> dict[str, object]:
    try:
        return staff_cases.get(hub(), db(), staff_id)
    except NotFound:
        abort(404)


@bp.get("/staff/<uuid:staff_id>")
@requires("staff:manage")
def staff_member(staff_id: object, error: str | None = None) -> str:
    member = _member(str(staff_id))
    return render_template("console/staff_member.html", nav="staff", member=member,
                           role_form=RoleForm(role=member["role"]), action=ActionForm(),
                           error=error)


def _refused(staff_id: object, exc: Conflict) -> tuple[str, int]:
    return staff_member(staff_id, error=exc.detail), 409


@bp.post("/staff/<uuid:staff_id>/role")
@requires("staff:manage")
def staff_role(staff_id: object) -> Response | tuple[str, int]:
    form = RoleForm()
    if not form.validate_on_submit():
        return staff_member(staff_id), 422
    try:
        staff_cases.set_role(hub(), db(), str(staff_id), form.role.data, actor=actor())
    except Conflict as exc:
        return _refused(staff_id, exc)
    return redirect(url_for("console.staff_member", staff_id=staff_id), 303)


@bp.post("/staff/<uuid:staff_id>/reset-second-factor")
@requires("staff:manage")
def staff_reset(staff_id: object) -> str | tuple[str, int]:
    if not ActionForm().validate_on_submit():
        return staff_member(staff_id), 422
    enrolment = staff_cases.reset_second_factor(hub(), db(), str(staff_id), actor=actor())
    return _enrolment_page(enrolment, _member(str(staff_id)), new=False)


@bp.post("/staff/<uuid:staff_id>/disable")
@requires("staff:manage")
def staff_disable(staff_id: object) -> Response | tuple[str, int]:
    if not ActionForm().validate_on_submit():
        return staff_member(staff_id), 422
    try:
        staff_cases.disable(hub(), db(), str(staff_id), actor=actor())
    except Conflict as exc:
        return _refused(staff_id, exc)
    return redirect(url_for("console.staff_member", staff_id=staff_id), 303)
