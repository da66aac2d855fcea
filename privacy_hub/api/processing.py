"""DPO actions on a customer's processing flags: lifting a restriction, recording
compelling grounds against an objection."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate

from privacy_hub.api.auth import current_principal, require
from privacy_hub.schemas import Strict
from privacy_hub.usecases import processing
from privacy_hub.usecases.customers import canonical_id
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
        cid = canonical_id(customer_id)
        processing.lift_restriction(hub(), db(), cid, note=body["note"],
                                    actor=current_principal().actor)
        return {"customer_id": cid, "restricted": False}


@blp.route("/<string:customer_id>/objections/<string:purpose>/grounds")
class CompellingGrounds(MethodView):
    @require("requests:manage")
    @blp.arguments(GroundsBody)
    @blp.response(200, Done)
    def post(self, body: dict[str, Any], customer_id: str, purpose: str) -> dict[str, Any]:
        """Record compelling legitimate grounds that override an objection (Art. 21(1));
        never for direct marketing (409)."""
        cid = canonical_id(customer_id)
        processing.record_compelling_grounds(hub(), db(), cid, purpose, grounds=body["grounds"],
                                             actor=current_principal().actor)
        return {"customer_id": cid, "purpose": purpose}
