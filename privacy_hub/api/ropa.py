"""The records of processing activities (GDPR Art. 30(1)) and the GPC support resource."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Blueprint as FlaskBlueprint
from flask import Response, jsonify
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate

from privacy_hub.api.auth import require
from privacy_hub.usecases import accountability
from privacy_hub.web.context import db, hub, read_only_request

blp = Blueprint("ropa", __name__, url_prefix="/api/v1",
                description="Records of processing activities (Art. 30), generated from the registries.")
well_known = FlaskBlueprint("well_known", __name__)

# Bumped when the hub's handling of the Global Privacy Control signal changes.
GPC_LAST_UPDATE = "2026-11-23"
class RopaQuery(ma.Schema):
    format = ma.fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]))


@blp.route("/ropa")
class Ropa(MethodView):
    @read_only_request
    @require("audit:read")
    @blp.arguments(RopaQuery, location="query")
    @blp.doc(responses={"200": {"description": "The record as JSON, or CSV with ?format=csv",
                                "content": {"application/json": {"schema": {"type": "object"}},
                                            "text/csv": {"schema": {"type": "string"}}}}})
    def get(self, query: dict[str, Any]) -> Any:
        """The Art. 30(1) record, one activity per purpose (`?format=csv` for a spreadsheet).

        Each consent-based activity also states how long its proof of consent is kept
        (`consent_proof_retention`; `consent_proof_retention_days` at the top, from
        PRIVACY_HUB_CONSENT_PROOF_RETENTION_DAYS)."""
        record = accountability.records_of_processing(hub(), db())
        if query["format"] == "json":
            return jsonify(record)
        return Response(accountability.records_as_csv(record), mimetype="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="ropa.csv"'})


@well_known.get("/.well-known/gpc.json")
def gpc() -> Response:
    """Global Privacy Control support resource (R-SIG-02)."""
    return jsonify(gpc=True, lastUpdate=GPC_LAST_UPDATE)
