"""The audit log: browse and filter the entries (audit:read), verify the chain and export
the signed checkpoints (audit:verify).

An admin runs the hub and may prove the log is intact, but reads no entries: entries name
which customer was read or changed by whom (Art. 32(4), least privilege).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response, abort, render_template, request
from flask_babel import gettext as _

from privacy_hub.console import bp, me, requires
from privacy_hub.console.forms import ActionForm
from privacy_hub.console.lookup_forms import MAX_SEQ, AuditFilterForm
from privacy_hub.usecases import accountability
from privacy_hub.web.context import db, hub

#: entries per page
PAGE_SIZE = 50


def _seq_arg(name: str) -> int | None:
    value = request.args.get(name, "")
    return int(value) if value.isdigit() and int(value) <= MAX_SEQ else None


def _render(verified: dict[str, Any] | None = None) -> tuple[str, int]:
    form = AuditFilterForm(formdata=request.args)
    page: dict[str, Any] | None = None
    status = 200
    if me().can("audit:read"):
        if request.args and not form.validate():
            status = 422
        else:
            page = accountability.audit_page(
                db(), after=form.since.data if form.since.data is not None else _seq_arg("after"),
                before=_seq_arg("before"), action=form.action.data or None,
                actor_kind=form.actor.data or None,
                customer_id=(form.customer_id.data or "").strip().lower() or None,
                limit=PAGE_SIZE)
    filters = {k: v for k, v in (("action", form.action.data), ("actor", form.actor.data),
                                 ("customer_id", form.customer_id.data)) if v}
    return render_template("console/audit_log.html", nav="audit", form=form, page=page,
                           filters=filters, verified=verified, action=ActionForm(),
                           pretty=lambda d: json.dumps(d, ensure_ascii=False, sort_keys=True)
                           ), status


@bp.get("/audit/")
@requires("audit:verify")
def audit_log() -> tuple[str, int]:
    """The verify button for every role that may verify; the entries for those that may read
    (browsing them, with a filter or a page, is 403 for the others)."""
    if request.args and not me().can("audit:read"):
        abort(403)
    return _render()


@bp.post("/audit/verify")
@requires("audit:verify")
def audit_verify() -> tuple[str, int]:
    """Recompute the hash chain and check every signed checkpoint; name the first bad entry."""
    if not ActionForm().validate_on_submit():
        return _render()[0], 422
    return _render(accountability.verify_audit_chain(hub(), db()))[0], 200


@bp.get("/audit/checkpoints.json")
@requires("audit:verify")
def audit_checkpoints() -> Response:
    """The signed checkpoints and the public key id, to keep outside this database."""
    exported = accountability.audit_checkpoints(hub(), db())
    return Response(json.dumps(exported, indent=2), mimetype="application/json",
                    headers={"Content-Disposition":
                             'attachment; filename="audit-checkpoints.json"'})


def actor_words() -> dict[str, str]:
    """Actor kinds in words."""
    return {"staff": _("Staff"), "customer": _("Customer"), "system": _("System"),
            "job": _("Background job"), "cli": _("Command line")}


@bp.context_processor
def _audit_words() -> dict[str, object]:
    return {"actor_words": actor_words()}
