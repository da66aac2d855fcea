"""The gate (API.md "The gate"): may a service use a customer's data for a purpose?"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import marshmallow as ma
from flask import current_app, g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate

import audit
from audit.db import new_id, rfc3339, utcnow
from consent.gate import Decision
from privacy_hub.api.auth import current_principal, require, require_purpose
from privacy_hub.api.customers import customer_id_or_404
from privacy_hub.api.pagination import decode_cursor, encode_cursor
from privacy_hub.api.problems import Problem
from privacy_hub.api.schemas import Strict
from privacy_hub.checklog import CheckLog
from privacy_hub.gatekeeper import Gatekeeper
from privacy_hub.vault.models import CustomerEvent
from privacy_hub.web import db, hub, read_only_request

blp = Blueprint("gate", __name__, url_prefix="/api/v1",
                description="The gate: check before you email, profile, track or share.")

MAX_BATCH = 10_000
MAX_AUDIENCE_PAGE = 100_000
MAX_EVENTS = 1_000
gatekeeper = Gatekeeper()


def checklog() -> CheckLog:
    return hub().checklog


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _valid_uuid(value: str) -> bool:
    return _UUID.fullmatch(value) is not None


class CheckQuery(ma.Schema):
    customer_id = ma.fields.String(required=True, validate=validate.Length(min=1, max=64))
    purpose = ma.fields.String(required=True, validate=validate.Length(min=1, max=100))
    at = ma.fields.AwareDateTime(format="iso", default_timezone=None, metadata={
        "description": "Answer as it held at this time (needs audit:read)"})


class CheckResult(ma.Schema):
    customer_id = ma.fields.String()
    purpose = ma.fields.String()
    allowed = ma.fields.Boolean()
    legal_basis = ma.fields.String()
    reason = ma.fields.String(metadata={"enum": [
        "granted", "not_granted", "withdrawn", "expired", "pending_confirmation",
        "reconsent_required", "objected", "restricted", "erased", "unknown_customer",
        "legal_basis"]})
    valid_until = ma.fields.String(allow_none=True)


class BatchCheck(Strict):
    purpose = ma.fields.String(required=True, validate=validate.Length(min=1, max=100))
    # Plain strings, checked in one pass in the view: 10,000 per-item validators cost more
    # than the whole gate query.
    customer_ids = ma.fields.List(ma.fields.String(), required=True,
                                  validate=validate.Length(max=MAX_BATCH))


class BatchItem(ma.Schema):
    customer_id = ma.fields.String()
    allowed = ma.fields.Boolean()
    reason = ma.fields.String()


class BatchResult(ma.Schema):
    results = ma.fields.List(ma.fields.Nested(BatchItem))


class AudienceQuery(Strict):
    purpose = ma.fields.String(required=True, validate=validate.Length(min=1, max=100))
    customer_ids = ma.fields.List(ma.fields.String(validate=validate.Length(max=64)),
                                  validate=validate.Length(max=MAX_BATCH))
    limit = ma.fields.Integer(load_default=1000, validate=validate.Range(min=1, max=MAX_AUDIENCE_PAGE))
    cursor = ma.fields.String(load_default=None, validate=validate.Length(max=512))


class AudiencePage(ma.Schema):
    purpose = ma.fields.String()
    items = ma.fields.List(ma.fields.String(), metadata={"description": "Allowed customer ids"})
    next_cursor = ma.fields.String(allow_none=True)


def _answer(customer_id: str, purpose: str, d: Decision) -> dict[str, Any]:
    return {"customer_id": customer_id, "purpose": purpose, "allowed": d.allowed,
            "legal_basis": str(d.legal_basis), "reason": str(d.reason),
            "valid_until": rfc3339(d.valid_until)}


@blp.route("/consent-check")
class ConsentCheck(MethodView):
    @read_only_request
    @require("consents:read")
    @blp.arguments(CheckQuery, location="query")
    @blp.response(200, CheckResult)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """Is this use allowed for this customer now (or, with `at`, then)? Unknown purpose: 404."""
        purpose, cid = query["purpose"], query["customer_id"]
        require_purpose(purpose)
        session = db()
        if query.get("at") is not None:
            if "audit:read" not in current_principal().scopes:
                raise Problem(403, "Answers about the past need the `audit:read` scope.",
                              type_="missing-scope", required_scope="audit:read")
            decision = (gatekeeper.check_at(session, cid, purpose, query["at"])
                        if _valid_uuid(cid) else _unknown(session, purpose))
        else:
            decision = (gatekeeper.check(session, cid, purpose, utcnow())
                        if _valid_uuid(cid) else _unknown(session, purpose))
        checklog().add(current_principal().name, cid if _valid_uuid(cid) else None, purpose,
                       decision.allowed, str(decision.reason), "check")
        return _answer(cid, purpose, decision)

    @read_only_request
    @require("consents:read")
    @blp.arguments(BatchCheck)
    @blp.response(200, BatchResult)
    def post(self, body: dict[str, Any]) -> Any:
        """Check up to 10,000 customers for one purpose; results in the same order."""
        purpose, ids = body["purpose"], body["customer_ids"]
        require_purpose(purpose)
        too_long = [i for i, cid in enumerate(ids) if len(cid) > 64]
        if too_long:
            raise Problem(422, "Customer ids are at most 64 characters.",
                          errors={f"customer_ids.{i}": ["longer than 64 characters"]
                                  for i in too_long[:20]})
        decisions = gatekeeper.check_many(db(), [c if _valid_uuid(c) else "" for c in ids],
                                          purpose, utcnow())
        results = [{"customer_id": cid, "allowed": d.allowed, "reason": str(d.reason)}
                   for cid, d in zip(ids, decisions, strict=True)]
        allowed = sum(1 for d in decisions if d.allowed)
        checklog().add(current_principal().name, None, purpose, allowed > 0,
                       f"{allowed}/{len(ids)}", "batch")
        # Serialised directly: the schema documents the shape, dumping 10,000 items through
        # it would cost more than deciding them.
        return current_app.response_class(json.dumps({"results": results}),
                                          mimetype="application/json")


def _unknown(session: Any, purpose: str) -> Decision:
    from consent.gate import UNKNOWN, decide

    return decide(gatekeeper.rule(session, purpose).rule, None, UNKNOWN, utcnow())


@blp.route("/audiences")
class Audiences(MethodView):
    @read_only_request
    @require("consents:read")
    @blp.arguments(AudienceQuery)
    @blp.response(200, AudiencePage)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """The customers a purpose allows: among `customer_ids`, or among all customers.

        Paginated over all customers by `limit` (up to 100,000 ids a page) and `cursor`.
        """
        purpose = body["purpose"]
        require_purpose(purpose)
        now = utcnow()
        if body.get("customer_ids") is not None:
            ids = [c for c in body["customer_ids"] if _valid_uuid(c)]
            items = [cid for cid, d in zip(ids, gatekeeper.check_many(db(), ids, purpose, now),
                                           strict=True) if d.allowed]
            nxt = None
        else:
            position = decode_cursor(body["cursor"], required_keys=("after",))
            after = str(position["after"]) if position else None
            items, last = gatekeeper.audience(db(), purpose, now, after=after, limit=body["limit"])
            nxt = encode_cursor({"after": last}) if last else None
        checklog().add(current_principal().name, None, purpose, bool(items), str(len(items)),
                       "audience")
        return {"purpose": purpose, "items": items, "next_cursor": nxt}


class PurposeDataSchema(ma.Schema):
    customer_id = ma.fields.String()
    purpose = ma.fields.String()
    data = ma.fields.Dict(metadata={"description": "Only the purpose's `fields`"})


class EventsResultSchema(ma.Schema):
    accepted = ma.fields.Integer()
    dropped = ma.fields.Integer()


class DataQuery(ma.Schema):
    purpose = ma.fields.String(required=True, validate=validate.Length(min=1, max=100))


@blp.route("/customers/<string:customer_id>/data")
class PurposeBoundData(MethodView):
    @require("data:read")
    @blp.arguments(DataQuery, location="query")
    @blp.response(200, PurposeDataSchema)
    def get(self, query: dict[str, Any], customer_id: str) -> dict[str, Any]:
        """Only the fields the purpose may read, and only while the gate allows it (audited)."""
        purpose = query["purpose"]
        require_purpose(purpose)
        cid = customer_id_or_404(customer_id)
        session = db()
        info = gatekeeper.rule(session, purpose)
        decision = gatekeeper.check(session, cid, purpose, utcnow())
        checklog().add(current_principal().name, cid, purpose, decision.allowed,
                       str(decision.reason), "data")
        if not decision.allowed:
            audit.record(session, actor=current_principal().actor, action="data.read_denied",
                         customer_id=cid if decision.reason != "unknown_customer" else None,
                         details={"purpose": purpose, "reason": str(decision.reason)})
            g.commit_on_error = True
            raise Problem(403, f"The gate does not allow {purpose!r} for this customer.",
                          type_="gate-denied", reason=str(decision.reason))
        fields = json.loads(info.fields)
        profile = hub().vault.read(session, cid, actor=current_principal().actor,
                                   purpose=purpose, only=fields)
        return {"customer_id": cid, "purpose": purpose,
                "data": {k: profile.get(k) for k in fields}}


class EventIn(Strict):
    customer_id = ma.fields.String(required=True, validate=validate.Length(min=1, max=64))
    type = ma.fields.String(required=True, validate=validate.Regexp(
        r"^[a-z][a-z0-9_.]{0,39}$", error="a lowercase code, e.g. page_view, cart_add"))
    purpose = ma.fields.String(required=True, validate=validate.Length(min=1, max=100))
    occurred_at = ma.fields.AwareDateTime(required=True, format="iso", default_timezone=None)
    properties = ma.fields.Dict(load_default=dict)

    @ma.validates("properties")
    def _size(self, value: dict[str, Any], **_: Any) -> None:
        if len(json.dumps(value)) > 4096:
            raise ma.ValidationError("must be at most 4 KiB as JSON")


class EventsIn(Strict):
    events = ma.fields.List(ma.fields.Nested(EventIn), required=True,
                            validate=validate.Length(min=1, max=MAX_EVENTS))


@blp.route("/events")
class Events(MethodView):
    @require("events:write")
    @blp.arguments(EventsIn)
    @blp.response(200, EventsResultSchema)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Store interaction events whose purpose the gate allows; drop the rest."""
        events = body["events"]
        now = utcnow()
        errors = {f"events.{i}.occurred_at": ["lies in the future"]
                  for i, e in enumerate(events) if e["occurred_at"] > now + timedelta(minutes=5)}
        if errors:
            raise Problem(422, "The request has invalid fields: " + ", ".join(errors),
                          errors=errors)
        for purpose in {e["purpose"] for e in events}:
            require_purpose(purpose)
        session = db()
        allowed: set[tuple[str, str]] = set()
        for purpose in {e["purpose"] for e in events}:
            ids = list({e["customer_id"] for e in events
                        if e["purpose"] == purpose and _valid_uuid(e["customer_id"])})
            for cid, d in zip(ids, gatekeeper.check_many(session, ids, purpose, now), strict=True):
                if d.allowed:
                    allowed.add((cid, purpose))
        keys = hub().keyring.data_keys(session, sorted({c for c, _ in allowed}))
        accepted = 0
        per_customer: dict[str, int] = {}
        for e in events:
            key = keys.get(e["customer_id"])
            if (e["customer_id"], e["purpose"]) not in allowed or key is None:
                continue
            row_id = new_id()
            payload = json.dumps({"type": e["type"], "properties": e["properties"]},
                                 sort_keys=True).encode()
            session.add(CustomerEvent(
                id=row_id, customer_id=e["customer_id"], purpose=e["purpose"],
                occurred_at=e["occurred_at"], recorded_at=now,
                payload_ct=key.seal("customer_events", "payload_ct", row_id, payload)))
            accepted += 1
            per_customer[e["customer_id"]] = per_customer.get(e["customer_id"], 0) + 1
        for cid, count in per_customer.items():
            audit.record(session, actor=current_principal().actor, action="events.ingested",
                         customer_id=cid, details={"count": count})
        return {"accepted": accepted, "dropped": len(events) - accepted}
