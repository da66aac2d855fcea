"""IAB TCF TC strings per customer (R-SIG-03): store the CMP's string, read it back."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from privacy_hub import tcf
from privacy_hub.api.auth import current_principal, require
from privacy_hub.api.idempotency import idempotent, set_subject
from privacy_hub.api.pagination import PAGE, next_cursor_field, page_of
from privacy_hub.schemas import Strict, UtcDateTime
from privacy_hub.usecases import consents
from privacy_hub.usecases.customers import canonical_id
from privacy_hub.web.context import db, hub, read_only_request

blp = Blueprint("tcf", __name__, url_prefix="/api/v1/customers",
                description="IAB TCF v2 TC strings from a CMP, stored verbatim per customer. "
                            "The hub never creates or alters a TC string.")


def _tc_string_ok(value: str) -> None:
    try:
        tcf.decode(value)
    except tcf.InvalidTcString as exc:
        raise ma.ValidationError(str(exc)) from None


class TcStringInSchema(Strict):
    tc_string = ma.fields.String(required=True, validate=_tc_string_ok, metadata={
        "description": "The TC string exactly as the CMP produced it: base64url segments "
                       "separated by '.', the core segment (TCF version 2) first.",
        "minLength": 1, "maxLength": tcf.MAX_LENGTH, "pattern": tcf.PATTERN})
    collected_at = UtcDateTime(metadata={
        "description": "When the CMP collected it (optional; not in the future)"})


class TcStringSchema(ma.Schema):
    id = ma.fields.String(metadata={"format": "uuid"})
    customer_id = ma.fields.String(metadata={"format": "uuid"})
    tc_string = ma.fields.String(metadata={"description": "exactly as stored, byte for byte"})
    tcf_version = ma.fields.Integer(metadata={"description": "the core segment's version (2)"})
    cmp_id = ma.fields.Integer(metadata={"description": "the CMP's IAB id"})
    cmp_version = ma.fields.Integer()
    consent_language = ma.fields.String(metadata={"description": "two letters, e.g. EN"})
    vendor_list_version = ma.fields.Integer()
    tcf_policy_version = ma.fields.Integer()
    tc_created_at = ma.fields.String(metadata={"format": "date-time",
                                               "description": "the string's Created field"})
    tc_updated_at = ma.fields.String(metadata={"format": "date-time",
                                               "description": "the string's LastUpdated field"})
    collected_at = ma.fields.String(allow_none=True, metadata={"format": "date-time"})
    recorded_at = ma.fields.String(metadata={"format": "date-time"})
    recorded_by = ma.fields.String(metadata={"description": "the system that sent it"})


class TcStringListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(TcStringSchema))
    next_cursor = next_cursor_field()


# Instances, not classes: given a class, webargs builds a new schema on every request.
_IN = TcStringInSchema()


@blp.route("/<string:customer_id>/tcf")
class TcStrings(MethodView):
    @require("consents:write")
    @idempotent
    @blp.arguments(_IN)
    @blp.response(201, TcStringSchema)
    def post(self, body: dict[str, Any], customer_id: str) -> dict[str, Any]:
        """Store the TC string a CMP produced for this customer, verbatim.

        Sealed under the customer's key, with its core segment's header (CMP id and
        version, created and last updated, vendor list and policy version). Each string
        is kept: a new one does not replace the last. 409 for an erased customer.
        """
        cid = canonical_id(customer_id)
        set_subject(cid)
        return consents.store_tc_string(hub(), db(), cid, body["tc_string"],
                                        collected_at=body.get("collected_at"),
                                        actor=current_principal().actor)

    @require("consents:read")
    @read_only_request
    @blp.response(200, TcStringSchema)
    def get(self, customer_id: str) -> dict[str, Any]:
        """The newest stored TC string, byte-identical (audited).

        404 when none is stored, or the customer was erased.
        """
        return consents.latest_tc_string(hub(), db(), canonical_id(customer_id),
                                         actor=current_principal().actor)


@blp.route("/<string:customer_id>/tcf/history")
class TcStringHistory(MethodView):
    @require("consents:read")
    @read_only_request
    @blp.arguments(PAGE, location="query")
    @blp.response(200, TcStringListSchema)
    def get(self, page: dict[str, Any], customer_id: str) -> dict[str, Any]:
        """Every stored TC string, oldest first (audited).

        Empty once the customer was erased.
        """
        return page_of(consents.tc_string_history(hub(), db(), canonical_id(customer_id),
                                                  actor=current_principal().actor),
                       page, key="id")
