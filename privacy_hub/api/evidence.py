"""The evidence pack for a supervisory authority (R-AUD-03): a DPO's export."""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Any

import marshmallow as ma
from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate

from privacy_hub import evidence
from privacy_hub.api.audit_log import AuditEntrySchema
from privacy_hub.api.auth import current_principal, require
from privacy_hub.api.gate import CheckResult
from privacy_hub.usecases import accountability
from privacy_hub.web.context import db, hub, read_only_request

blp = Blueprint("evidence", __name__, url_prefix="/api/v1",
                description="Evidence packs for a supervisory authority (Art. 7(1), 31, 58(1)(a)).")


class EvidenceQuery(ma.Schema):
    purpose = ma.fields.String(required=True, validate=validate.Length(min=1, max=100))
    format = ma.fields.String(load_default="json", validate=validate.OneOf(["json", "zip"]),
                              metadata={"description": "zip: evidence.json plus each notice "
                                        "text and each receipt JWS as files of their own"})


class ControllerSchema(ma.Schema):
    name = ma.fields.String()
    contact = ma.fields.String()
    address = ma.fields.String()
    dpo = ma.fields.String()


class PurposeVersionSchema(ma.Schema):
    version = ma.fields.Integer()
    revision = ma.fields.Integer()
    material = ma.fields.Boolean()
    created_at = ma.fields.String(metadata={"format": "date-time"})
    snapshot = ma.fields.Dict(metadata={"description": "The purpose as it was registered"})


class EvidenceReceiptSchema(ma.Schema):
    receipt_id = ma.fields.String()
    receipt = ma.fields.Dict(allow_none=True)
    jws = ma.fields.String(allow_none=True)
    verified = ma.fields.Boolean(metadata={
        "description": "The JWS verifies with the hub's receipt keys and signs exactly this receipt"})


class ReceiptKeysSchema(ma.Schema):
    source = ma.fields.String()
    jwks = ma.fields.Dict()


class EvidenceNoticeSchema(ma.Schema):
    version = ma.fields.String()
    language = ma.fields.String()
    text = ma.fields.String(allow_none=True)
    sha256 = ma.fields.String(allow_none=True, metadata={"description": "As stored"})
    created_at = ma.fields.String(allow_none=True, metadata={"format": "date-time"})
    sha256_matches = ma.fields.Boolean(metadata={
        "description": "SHA-256 of the text, recomputed now, equals the stored hash"})
    recorded_sha256_matches = ma.fields.Boolean(metadata={
        "description": "Every event naming this notice recorded the stored hash"})


class CheckEntrySchema(ma.Schema):
    checked_at = ma.fields.String(metadata={"format": "date-time"})
    system = ma.fields.String()
    allowed = ma.fields.Boolean()
    reason = ma.fields.String()
    via = ma.fields.String()


class DisclosureSchema(ma.Schema):
    disclosed_at = ma.fields.String(metadata={"format": "date-time"})
    system = ma.fields.String(metadata={"description": "The registered system that received it"})
    purpose = ma.fields.String(allow_none=True)
    kind = ma.fields.String(metadata={
        "enum": ["data_read", "webhook", "check"],
        "description": "`data_read`: the purpose's fields read through `data:read`; "
                       "`webhook`: a delivered webhook about the customer; `check`: a gate "
                       "answer about the customer (from the check log)"})
    # (``fields`` is the name of a Schema's own attribute: declared under another one)
    field_names = ma.fields.List(ma.fields.String(), data_key="fields", attribute="fields",
                                 metadata={"description": "The names of the fields disclosed "
                                                          "(never their values)"})
    event_type = ma.fields.String(allow_none=True, metadata={"description": "Webhooks: its type"})
    answer = ma.fields.String(allow_none=True, metadata={
        "description": "Checks: `allowed` or `denied (<reason>)`"})


class FlagEventSchema(ma.Schema):
    kind = ma.fields.String(metadata={"enum": ["restricted", "restriction_lifted", "objected",
                                               "grounds_recorded", "erased", "suppressed",
                                               "suppression_lifted"]})
    purpose = ma.fields.String(allow_none=True)
    detail = ma.fields.String(allow_none=True)
    recorded_at = ma.fields.String(metadata={"format": "date-time"})


class EvidenceAuditEntrySchema(AuditEntrySchema):
    hash_matches = ma.fields.Boolean(metadata={
        "description": "Its hash, recomputed from its stored fields and prev_hash, matches"})
    linked = ma.fields.Boolean(metadata={
        "description": "Its neighbours in the chain point to it (the whole chain: "
                       "GET /api/v1/audit/verify)"})


class EvidenceRetentionSchema(ma.Schema):
    retention_days = ma.fields.Integer(metadata={
        "description": "PRIVACY_HUB_CONSENT_PROOF_RETENTION_DAYS: days evidence is kept after "
                       "the consent ended"})
    rule = ma.fields.String()
    kept = ma.fields.Integer(metadata={"description": "Events of this pack whose evidence is held"})
    purged = ma.fields.Integer(metadata={"description": "Events of this pack whose evidence was purged"})


class EvidencePackSchema(ma.Schema):
    customer_id = ma.fields.String()
    customer_status = ma.fields.String(metadata={"enum": ["active", "restricted", "erased"]})
    customer_erased_at = ma.fields.String(allow_none=True, metadata={"format": "date-time"})
    purpose = ma.fields.String()
    generated_at = ma.fields.String(metadata={"format": "date-time"})
    controller = ma.fields.Nested(ControllerSchema)
    purpose_versions = ma.fields.List(ma.fields.Nested(PurposeVersionSchema))
    consent_events = ma.fields.List(ma.fields.Dict(), metadata={
        "description": "As /consents/history gives them; `evidence` holds the UI details, "
                       "`evidence_sha256_matches` says whether their SHA-256, recomputed now, "
                       "is the one the event, its receipt and its audit entry name. Purged "
                       "evidence (R-CREC-06) is null, and `evidence_note` says "
                       "\"purged on <date> (why)\""})
    evidence_retention = ma.fields.Nested(EvidenceRetentionSchema)
    receipts = ma.fields.List(ma.fields.Nested(EvidenceReceiptSchema))
    receipt_keys = ma.fields.Nested(ReceiptKeysSchema)
    notices = ma.fields.List(ma.fields.Nested(EvidenceNoticeSchema))
    checks = ma.fields.List(ma.fields.Nested(CheckEntrySchema), metadata={
        "description": f"Newest first, at most {evidence.MAX_CHECKS}"})
    checks_capped = ma.fields.Boolean()
    disclosures = ma.fields.List(ma.fields.Nested(DisclosureSchema), metadata={
        "description": "The disclosure log for this purpose (R-ACC-03): which system received "
                       f"the customer's data and when, oldest first; at most the newest "
                       f"{evidence.MAX_CHECKS} stored disclosures and gate answers each"})
    disclosures_capped = ma.fields.Boolean()
    check_log_flushed = ma.fields.Boolean(metadata={
        "description": "This process's buffered checks were written first"})
    processing_flags = ma.fields.List(ma.fields.Nested(FlagEventSchema))
    audit_entries = ma.fields.List(ma.fields.Nested(EvidenceAuditEntrySchema))
    audit_entries_capped = ma.fields.Boolean()
    audit_entries_verified = ma.fields.Boolean()
    audit_chain_verification = ma.fields.String()
    current_decision = ma.fields.Nested(CheckResult)


_PACK = EvidencePackSchema()


@blp.route("/customers/<string:customer_id>/evidence")
class EvidencePack(MethodView):
    @read_only_request
    @require("audit:read")
    @blp.arguments(EvidenceQuery, location="query")
    @blp.response(200, EvidencePackSchema)
    @blp.doc(responses={"200": {"description": "The pack as JSON, or as a ZIP with ?format=zip",
                                "content": {"application/json": {"schema": EvidencePackSchema},
                                            "application/zip": {"schema": {
                                                "type": "string", "format": "binary"}}}}})
    def get(self, query: dict[str, Any], customer_id: str) -> Any:
        """The evidence pack for one customer and purpose (R-AUD-03).

        Everything that proves consent, for a supervisory authority: purpose versions, notice texts with hashes, ledger events with their UI evidence, verified
        receipts, the check history, processing flags, audit entries with hashes
        recomputed, and the gate's answer now. Ids only; an erased customer has one too."""
        pack = accountability.evidence_pack(
            hub(), db(), customer_id, query["purpose"], actor=current_principal().actor,
            export_format=query["format"], may_use=current_principal().may_use_purpose)
        if query["format"] == "zip":
            return _zip(_PACK.dump(pack))
        return pack


#: the API publishes notice versions within [A-Za-z0-9._-]; other ways need not
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _zip(pack: dict[str, Any]) -> Response:
    """evidence.json, each notice text and each receipt's JWS, and the receipt keys."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("evidence.json", json.dumps(pack, indent=2, ensure_ascii=False))
        for i, notice in enumerate(pack["notices"], start=1):
            if notice["text"] is not None:
                name = _UNSAFE.sub("_", f"{notice['version']}-{notice['language']}")
                archive.writestr(f"notices/{i:03d}-{name}.txt", notice["text"])
        for receipt in pack["receipts"]:
            if receipt["jws"] is not None:
                archive.writestr(f"receipts/{receipt['receipt_id']}.jws", receipt["jws"])
        archive.writestr("receipts/jwks.json", json.dumps(pack["receipt_keys"]["jwks"], indent=2))
    name = f"evidence-{pack['customer_id']}-{pack['purpose']}.zip"
    return Response(out.getvalue(), mimetype="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
