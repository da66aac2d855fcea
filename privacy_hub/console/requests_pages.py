"""The request queue and each request's page: the DPO verifies, extends, rejects and
closes requests, asks a failed system again, and previews and downloads an export
before it is released. Every action is a use case called with ``actor()`` (audited
with the staff member's id); URLs carry request ids only, never a subject's details."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response as WerkzeugResponse

from dsar.errors import InvalidRequest, RequestNotFound, TransitionRefused
from privacy_hub.console import actor, bp, me, requires
from privacy_hub.console.forms import ActionForm
from privacy_hub.console.requests_forms import (
    VERIFICATION_METHODS,
    CloseForm,
    ExtendForm,
    QueueFilterForm,
    RejectForm,
    VerifyForm,
    rejection_grounds,
    status_names,
    type_names,
)
from privacy_hub.usecases import queue as queue_cases
from privacy_hub.usecases import requests as request_cases
from privacy_hub.usecases.errors import Conflict, Gone, NotFound
from privacy_hub.web.context import db, hub

#: what the page says after each action succeeded (``?done=`` carries only the key)
DONE = ("verified", "extended", "rejected", "closed", "retried")


def _names() -> dict[str, Any]:
    return {"type_names": type_names(), "status_names": status_names(),
            "method_names": {k: str(v) for k, v in VERIFICATION_METHODS},
            "ground_names": rejection_grounds()}


@bp.context_processor
def _needs_attention() -> dict[str, object]:
    """The overview's "needs attention" block: overdue and due-this-week counts."""
    if request.endpoint != "console.home" or not me().can("requests:read"):
        return {}
    return {"request_counts": queue_cases.counts(db())}


@bp.get("/requests/", endpoint="requests")
@requires("requests:read")
def queue_page() -> tuple[str, int]:
    form = QueueFilterForm(request.args)
    valid = form.validate()
    # An invalid filter shows its error beside the field, and the whole queue.
    filters = {k: v for k, v in (("type", form.type.data), ("status", form.status.data),
                                 ("due", form.due.data)) if valid and v}
    found = queue_cases.queue(db(), type=filters.get("type"), status=filters.get("status"),
                              due=filters.get("due"), page=(form.page.data or 1) if valid else 1)
    return render_template("console/requests_queue.html", nav="requests", form=form,
                           found=found, counts=queue_cases.counts(db()), filters=filters,
                           **_names()), (200 if valid else 422)


def _forms(**bound: FlaskForm) -> dict[str, FlaskForm]:
    forms: dict[str, FlaskForm] = {"verify": VerifyForm(formdata=None, prefix="verify"),
                                   "extend": ExtendForm(formdata=None, prefix="extend"),
                                   "reject": RejectForm(formdata=None, prefix="reject"),
                                   "close": CloseForm(formdata=None, prefix="close"),
                                   "action": ActionForm(formdata=None)}
    forms.update(bound)
    return forms


def _page(request_id: object, *, status: int = 200, error: str | None = None,
          failed: FlaskForm | None = None, **bound: FlaskForm) -> tuple[str, int]:
    try:
        req = queue_cases.detail(hub(), db(), str(request_id))
    except RequestNotFound:
        abort(404)
    done = request.args.get("done")
    return render_template("console/request.html", nav="requests", req=req,
                           forms=_forms(**bound), error=error, failed=failed,
                           done=done if done in DONE else None, **_names()), status


@bp.get("/requests/<uuid:request_id>")
@requires("requests:read")
def request_detail(request_id: object) -> tuple[str, int]:
    return _page(request_id)


def _refusal(exc: Exception) -> str:
    """A refusal from the workflow, in the page's language (the reason where we know it)."""
    known = {
        "an extension must be decided before the original one-month deadline": _(
            "The deadline can no longer be extended: an extension must be decided before "
            "the original one-month deadline (Art. 12(3) GDPR)."),
        "the deadline can be extended by at most two months in total": _(
            "The deadline can be extended by at most two months in total (Art. 12(3) GDPR)."),
        "only a failed part can be retried": _("Only a system that failed its part can be "
                                               "asked again."),
        "Only a completed access or portability request has an export.": _(
            "Only a completed access or portability request has an export."),
        "The export was deleted after its retention period.": _(
            "The export was deleted after its retention period."),
    }
    return str(known.get(str(exc), _("This is not possible in the request's current state.")))


def _act(request_id: object, name: str, form: FlaskForm, done: str,
         call: Any) -> WerkzeugResponse | tuple[str, int]:
    """Validate ``form``, run ``call`` (a use case), and show the request again: the
    errors beside their fields (422), or a refusal (409), or what was done."""
    if not form.validate_on_submit():
        return _page(request_id, status=422, failed=form, **{name: form})
    try:
        call(form)
    except (RequestNotFound, NotFound):
        abort(404)
    except InvalidRequest as exc:
        db().rollback()
        for field, messages in exc.errors.items():
            bound = form._fields.get(field)
            if bound is not None:
                bound.errors = [*bound.errors, *messages]
        return _page(request_id, status=422, failed=form, **{name: form})
    except (TransitionRefused, Conflict, Gone) as exc:
        db().rollback()
        return _page(request_id, status=409, error=_refusal(exc))
    return redirect(url_for("console.request_detail", request_id=request_id, done=done), 303)


@bp.post("/requests/<uuid:request_id>/verify")
@requires("requests:work")
def request_verify(request_id: object) -> WerkzeugResponse | tuple[str, int]:
    return _act(request_id, "verify", VerifyForm(prefix="verify"), "verified", lambda f: request_cases.verify(
        hub(), db(), str(request_id), method=f.method.data, actor=actor()))


@bp.post("/requests/<uuid:request_id>/extend")
@requires("requests:work")
def request_extend(request_id: object) -> WerkzeugResponse | tuple[str, int]:
    return _act(request_id, "extend", ExtendForm(prefix="extend"), "extended", lambda f: request_cases.extend(
        hub(), db(), str(request_id), months=f.months.data, reason=f.reason.data,
        actor=actor()))


@bp.post("/requests/<uuid:request_id>/reject")
@requires("requests:work")
def request_reject(request_id: object) -> WerkzeugResponse | tuple[str, int]:
    return _act(request_id, "reject", RejectForm(prefix="reject"), "rejected", lambda f: request_cases.reject(
        hub(), db(), str(request_id), ground=f.ground.data, reason=f.reason.data,
        actor=actor()))


@bp.post("/requests/<uuid:request_id>/close")
@requires("requests:work")
def request_close(request_id: object) -> WerkzeugResponse | tuple[str, int]:
    return _act(request_id, "close", CloseForm(prefix="close"), "closed", lambda f: request_cases.close(
        hub(), db(), str(request_id), note=f.note.data, actor=actor()))


@bp.post("/requests/<uuid:request_id>/systems/<string:system>/retry")
@requires("requests:work")
def request_retry(request_id: object, system: str) -> WerkzeugResponse | tuple[str, int]:
    return _act(request_id, "action", ActionForm(), "retried",
                lambda _f: request_cases.retry_system(hub(), db(), str(request_id),
                                                      system=system, actor=actor()))


@bp.get("/requests/<uuid:request_id>/export")
@requires("requests:read")
def request_export(request_id: object) -> tuple[str, int]:
    """The export before it is released: its files, and data.json read (personal values
    only for a role with customers:personal)."""
    personal = me().can("customers:personal")
    try:
        preview = request_cases.preview_export(hub(), db(), str(request_id), personal=personal,
                                               actor=actor())
    except RequestNotFound:
        abort(404)
    except (Conflict, Gone) as exc:
        db().rollback()
        return _page(request_id, status=409 if isinstance(exc, Conflict) else 410,
                     error=_refusal(exc))
    req = queue_cases.detail(hub(), db(), str(request_id))
    return render_template("console/request_export.html", nav="requests", req=req,
                           preview=preview, personal=personal,
                           withheld=lambda v: isinstance(v, request_cases.Withheld),
                           **_names()), 200


@bp.get("/requests/<uuid:request_id>/export.zip")
@requires("customers:personal")
def request_download(request_id: object) -> Response | tuple[str, int]:
    """The ZIP itself: the same bytes the API's export gives (audited)."""
    try:
        archive = request_cases.export(hub(), db(), str(request_id), actor=actor())
    except RequestNotFound:
        abort(404)
    except (Conflict, Gone) as exc:
        db().rollback()
        return _page(request_id, status=409 if isinstance(exc, Conflict) else 410,
                     error=_refusal(exc))
    return Response(archive, mimetype="application/zip", headers={
        "Content-Disposition": f'attachment; filename="privacy-{request_id}.zip"',
        "Cache-Control": "no-store"})
