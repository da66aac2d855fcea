"""The records of processing activities (GDPR Art. 30(1)) and the GPC support resource."""

from __future__ import annotations

import csv
import io
from typing import Any

import marshmallow as ma
from flask import Blueprint as FlaskBlueprint
from flask import Response, jsonify
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate
from sqlalchemy import select

from audit.clock import rfc3339, utcnow
from consent import dpv
from consent import purposes as registry
from privacy_hub.api.auth import require
from privacy_hub.models import System
from privacy_hub.web.context import db, hub, read_only_request

blp = Blueprint("ropa", __name__, url_prefix="/api/v1",
                description="Records of processing activities (Art. 30), generated from the registries.")
well_known = FlaskBlueprint("well_known", __name__)

# Bumped when the hub's handling of the Global Privacy Control signal changes.
GPC_LAST_UPDATE = "2026-11-23"
SECURITY_MEASURES = (
    "Field-level AES-256-GCM encryption under one key per customer, keys wrapped under "
    "versioned key-encryption keys and a separate root key; erasure by destroying the key; "
    "keyed blind indexes for lookups; scoped, hashed API keys; tamper-evident audit log "
    "with signed checkpoints; TLS in transit.")


class RopaQuery(ma.Schema):
    format = ma.fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]))


def activities() -> dict[str, Any]:
    session = db()
    settings = hub().settings
    systems = {s.name for s in session.scalars(select(System))}
    items = []
    for p in registry.all_purposes(session):
        items.append({
            "purpose": p.key, "name": p.title, "description": p.description,
            "version": p.version, "legal_basis": str(p.legal_basis), "lia_ref": p.lia_ref,
            "dpv": p.dpv, "dpv_legal_basis": dpv.LEGAL_BASES[str(p.legal_basis)],
            "further_processing_of": p.source_purpose,
            "compatibility_ref": p.compatibility_ref,
            "categories_of_data_subjects": ["customers and prospects"],
            "categories_of_personal_data": list(p.data_categories),
            "special_category": p.special_category,
            "recipients": list(p.recipients),
            "internal_systems": sorted(r for r in p.recipients if r in systems),
            "third_country_transfers": "none",
            "retention": f"{p.retention_days} days",
            "security_measures": SECURITY_MEASURES,
        })
    return {
        "controller": settings.controller,
        "generated_at": rfc3339(utcnow()),
        "activities": items,
    }


@blp.route("/ropa")
class Ropa(MethodView):
    @read_only_request
    @require("audit:read")
    @blp.arguments(RopaQuery, location="query")
    @blp.doc(responses={"200": {"description": "The record as JSON, or CSV with ?format=csv",
                                "content": {"application/json": {"schema": {"type": "object"}},
                                            "text/csv": {"schema": {"type": "string"}}}}})
    def get(self, query: dict[str, Any]) -> Any:
        """The Art. 30(1) record, one activity per purpose (`?format=csv` for a spreadsheet)."""
        record = activities()
        if query["format"] == "json":
            return jsonify(record)
        out = io.StringIO()
        columns = ["purpose", "name", "version", "legal_basis", "lia_ref",
                   "further_processing_of", "compatibility_ref",
                   "categories_of_data_subjects", "categories_of_personal_data", "recipients",
                   "third_country_transfers", "retention", "security_measures"]
        writer = csv.writer(out)
        writer.writerow(["controller", *columns])
        for a in record["activities"]:
            writer.writerow([record["controller"]["name"], *[
                "; ".join(a[c]) if isinstance(a[c], list) else a[c] for c in columns]])
        return Response(out.getvalue(), mimetype="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="ropa.csv"'})


@well_known.get("/.well-known/gpc.json")
def gpc() -> Response:
    """Global Privacy Control support resource (R-SIG-02)."""
    return jsonify(gpc=True, lastUpdate=GPC_LAST_UPDATE)
