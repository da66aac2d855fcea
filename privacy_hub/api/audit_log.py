"""The tamper-evident audit log: entries and chain verification."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from privacy_hub.api.auth import require
from privacy_hub.api.pagination import (
    PageArgs,
    bad_cursor,
    encode_cursor,
    next_cursor_field,
    read_cursor,
)
from privacy_hub.usecases import accountability
from privacy_hub.web.context import db, hub, read_only_request

#: seq is a BIGINT: a larger number cannot be bound (SQLite raises OverflowError).
MAX_SEQ = 2**63 - 1

blp = Blueprint("audit", __name__, url_prefix="/api/v1/audit",
                description="The audit log: every change and every read of personal data.")


class AuditQuery(PageArgs):
    since_seq = ma.fields.Integer(load_default=None, validate=ma.validate.Range(min=0, max=MAX_SEQ))
    action = ma.fields.String(load_default=None, validate=ma.validate.Length(max=64))
    customer_id = ma.fields.String(load_default=None, validate=ma.validate.Length(max=36))


class ActorSchema(ma.Schema):
    type = ma.fields.String()
    id = ma.fields.String(allow_none=True)


class AuditEntrySchema(ma.Schema):
    seq = ma.fields.Integer()
    recorded_at = ma.fields.String(metadata={"format": "date-time"})
    actor = ma.fields.Nested(ActorSchema)
    action = ma.fields.String()
    customer_id = ma.fields.String(allow_none=True)
    details = ma.fields.Dict()
    prev_hash = ma.fields.String()
    hash = ma.fields.String()


class AuditPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(AuditEntrySchema))
    next_cursor = next_cursor_field()


class HeadSchema(ma.Schema):
    seq = ma.fields.Integer()
    hash = ma.fields.String()


class ConsentEventsSchema(ma.Schema):
    checked = ma.fields.Integer(metadata={"description": "Events whose stored row matched"})
    unhashed = ma.fields.Integer(metadata={
        "description": "Events recorded before their hash was chained: not checked"})
    missing = ma.fields.Integer(metadata={
        "description": "Hashed events no longer stored (deleted with an erased customer's "
                       "records under the retention rules): not a break"})


class VerifySchema(ma.Schema):
    ok = ma.fields.Boolean()
    entries = ma.fields.Integer()
    head = ma.fields.Nested(HeadSchema)
    first_bad_seq = ma.fields.Integer(allow_none=True)
    problem = ma.fields.String(allow_none=True)
    checkpoints_verified = ma.fields.Integer()
    first_seq = ma.fields.Integer(
        allow_none=True,
        metadata={"description": "The first entry kept: 1 unless older entries were pruned "
                                 "under the retention rule; null when no entry is kept."})
    pruned_below_seq = ma.fields.Integer(
        allow_none=True,
        metadata={"description": "Entries below this seq were pruned under the retention "
                                 "rule (R-RET-01); the kept chain is verified from the "
                                 "checkpoint signed at this seq minus one. Null when none "
                                 "was pruned."})
    consent_events = ma.fields.Nested(ConsentEventsSchema, allow_none=True, metadata={
        "description": "R-CREC-03: the stored consent events re-hashed against the hash "
                       "their audit entry holds (an edited event row fails the verification, "
                       "`first_bad_seq` naming its audit entry); null when the chain itself "
                       "is broken"})


@blp.route("")
class AuditEntries(MethodView):
    @read_only_request
    @require("audit:read")
    @blp.arguments(AuditQuery, location="query")
    @blp.response(200, AuditPageSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """Entries in sequence order, filtered by action and customer."""
        position = read_cursor(query["cursor"], after=int)
        since = _after_seq(position) if position else query["since_seq"]
        items, last = accountability.audit_entries(
            db(), since_seq=since, action=query["action"], customer_id=query["customer_id"],
            limit=query["limit"])
        return {"items": items,
                "next_cursor": encode_cursor({"after": last}) if last is not None else None}


def _after_seq(position: dict[str, Any]) -> int:
    after: int = position["after"]
    # A cursor is client input: a forged one must be a 422, not a 500 in the DB.
    if not 0 <= after <= MAX_SEQ:
        raise bad_cursor()
    return after


@blp.route("/verify")
class AuditVerify(MethodView):
    @read_only_request
    @require("audit:read")
    @blp.response(200, VerifySchema)
    def get(self) -> dict[str, Any]:
        """Recompute the hash chain and check the signed checkpoints.

        Entries pruned under the retention rule are gone: the kept chain is verified from
        the checkpoint signed where they were cut (see ``pruned_below_seq``)."""
        return accountability.verify_audit_chain(hub(), db())
