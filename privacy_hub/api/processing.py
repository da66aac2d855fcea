"""DPO actions on a customer's processing flags: lifting a restriction, recording
compelling grounds against an objection."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate

from consent import flags
from privacy_hub.api.auth import current_principal, require
from privacy_hub.api.customers import customer_id_or_404
from privacy_hub.api.problems import Problem
from privacy_hub.jobs import outbox
from privacy_hub.schemas import Strict
from privacy_hub.web.context import db, hub

blp = Blueprint("processing", __name__, url_prefix="/api/v1/customers",
                description="DPO actions on restrictions (Art. 18) and objections (Art. 21).")


class LiftBody(Strict):
    note = ma.fields.String(required=True, validate=validate.Length(min=1, max=2000),
                            metadata={"description": "Why it is lifted; told to the subject"})


class GroundsBody(Strict):
    grounds = ma.fields.String(required=True, validate=validate.Length(min=1, max=5000))


class Done(ma.Schema):
    customer_id = ma.fields.String()
    restricted = ma.fields.Boolean()
    purpose = ma.fields.String()


@blp.route("/<string:customer_id>/restriction/lift")
class LiftRestriction(MethodView):
    @require("requests:manage")
    @blp.arguments(LiftBody)
    @blp.response(200, Done)
    def post(self, body: dict[str, Any], customer_id: str) -> dict[str, Any]:
        """Lift a restriction; the subject is told first (Art. 18(3))."""
        cid = customer_id_or_404(customer_id)
        session = db()
        hub().vault.get_row(session, cid)
        if not flags.flags_for(session, cid).restricted:
            raise Problem(409, "This customer's processing is not restricted.")
        outbox.enqueue_mail(session, template="restriction_lifting", customer_id=cid,
                            data={"note": body["note"]})
        session.flush()
        flags.lift_restriction(session, cid, actor=current_principal().actor)
        return {"customer_id": cid, "restricted": False}


@blp.route("/<string:customer_id>/objections/<string:purpose>/grounds")
class CompellingGrounds(MethodView):
    @require("requests:manage")
    @blp.arguments(GroundsBody)
    @blp.response(200, Done)
    def post(self, body: dict[str, Any], customer_id: str, purpose: str) -> dict[str, Any]:
        """Record compelling legitimate grounds that override an objection (Art. 21(1));
        never for direct marketing (409)."""
        cid = customer_id_or_404(customer_id)
        hub().vault.get_row(db(), cid)
        flags.record_compelling_grounds(db(), cid, purpose, grounds=body["grounds"],
                                        actor=current_principal().actor)
        return {"customer_id": cid, "purpose": purpose}
