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
from privacy_hub.api.pagination import PAGE, encode_cursor, next_cursor_field, read_cursor
from privacy_hub.usecases import accountability, ropa_versions
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

        Generated from the purpose and system registries and the configuration: each
        activity's `categories_of_data_subjects`, `transfers` (recipient, country,
        safeguard; `third_country_transfers` says them in words), `automated_decisions`,
        `risk` and `dpia_ref` come from its purpose; `security_measures` (Art. 32) from this
        deployment's settings (encryption, key store, checkpoint signing, TLS, mail);
        `systems` lists the registered downstream systems. Each consent-based activity
        also states how long its proof of consent is kept (`consent_proof_retention`;
        `consent_proof_retention_days` at the top, from
        PRIVACY_HUB_CONSENT_PROOF_RETENTION_DAYS). `version` names the stored version
        this record is (`{"number", "sha256", "created_at", "cause"}`, see
        `/ropa/versions`)."""
        record = ropa_versions.named_record(hub(), db())
        if query["format"] == "json":
            return jsonify(record)
        return Response(accountability.records_as_csv(record), mimetype="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="ropa.csv"'})


class RopaVersionSchema(ma.Schema):
    number = ma.fields.Integer(metadata={"description": "1 for the first version, then +1"})
    sha256 = ma.fields.String(metadata={
        "description": "SHA-256 (hex) of the record as stored: canonical JSON (sorted keys, "
                       "no spaces) without `generated_at`"})
    created_at = ma.fields.DateTime(format="iso")
    cause = ma.fields.String(metadata={
        "description": "What changed it: the purposes and systems created or changed in "
                       "that transaction, or `configuration at start`"})


class RopaVersionList(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(RopaVersionSchema))
    next_cursor = next_cursor_field()


class RopaVersionRecord(RopaVersionSchema):
    record = ma.fields.Dict(metadata={
        "description": "The record as it was (GET /ropa without `generated_at`)"})


class FieldChange(ma.Schema):
    before = ma.fields.Raw(allow_none=True)
    after = ma.fields.Raw(allow_none=True)


class ActivityChange(ma.Schema):
    purpose = ma.fields.String()
    fields_ = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Nested(FieldChange),
                             data_key="fields", attribute="fields",
                             metadata={"description": "Each field changed, before and after"})


class RopaChanges(ma.Schema):
    number = ma.fields.Integer()
    previous = ma.fields.Integer(allow_none=True, metadata={
        "description": "The version compared with (null for the first: everything added)"})
    activities_added = ma.fields.List(ma.fields.String(), metadata={
        "description": "Activities (purpose keys) new in this version"})
    activities_removed = ma.fields.List(ma.fields.String())
    activities_changed = ma.fields.List(ma.fields.Nested(ActivityChange))
    sections_changed = ma.fields.List(ma.fields.String(), metadata={
        "description": "Other parts of the record that changed, e.g. `controller`, "
                       "`security_measures`, `systems`"})


@blp.route("/ropa/versions")
class RopaVersions(MethodView):
    @read_only_request
    @require("audit:read")
    @blp.arguments(PAGE, location="query")
    @blp.response(200, RopaVersionList)
    def get(self, page: dict[str, Any]) -> dict[str, Any]:
        """Every version of the records of processing, newest first (R-ROPA-01, Art. 5(2)).

        A version is stored whenever the generated record differs from the last one: in
        the transaction that creates or changes a purpose or a system, and at a start
        with another configuration."""
        position = read_cursor(page["cursor"], before=int)
        items, more = ropa_versions.versions(
            db(), before=None if position is None else position["before"], limit=page["limit"])
        return {"items": items,
                "next_cursor": None if more is None else encode_cursor({"before": more})}


# A string in the route, so that a request without a key is 401 whatever the path says
# (an <int:> converter would answer 404 first); the use case parses it.
_NUMBER = {"parameters": [{"in": "path", "name": "number", "required": True,
                           "description": "The version's number (1, 2, ...)",
                           "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,9}$"}}]}


@blp.route("/ropa/versions/<string:number>")
class RopaVersionItem(MethodView):
    @read_only_request
    @require("audit:read")
    @blp.doc(**_NUMBER)
    @blp.response(200, RopaVersionRecord)
    def get(self, number: str) -> dict[str, Any]:
        """One version of the records of processing, with the record as it was (404 for a
        number never given)."""
        return ropa_versions.version(db(), number)


@blp.route("/ropa/versions/<string:number>/changes")
class RopaVersionChanges(MethodView):
    @read_only_request
    @require("audit:read")
    @blp.doc(**_NUMBER)
    @blp.response(200, RopaChanges)
    def get(self, number: str) -> dict[str, Any]:
        """What this version changed against the one before it: activities added and
        removed, each field changed (before and after), other sections changed."""
        return ropa_versions.changes(db(), number)


@well_known.get("/.well-known/gpc.json")
def gpc() -> Response:
    """Global Privacy Control support resource (R-SIG-02)."""
    return jsonify(gpc=True, lastUpdate=GPC_LAST_UPDATE)
