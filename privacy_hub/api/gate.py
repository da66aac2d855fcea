"""The gate (API.md "The gate"): may a service use a customer's data for a purpose?"""

from __future__ import annotations

import http
import json
import re
from collections.abc import Callable
from copy import deepcopy
from datetime import timedelta
from typing import Any, TypeVar

import marshmallow as ma
from flask import Response, current_app, g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate

import audit
from audit.clock import rfc3339, utcnow
from audit.ids import new_id
from consent import flags as flag_service
from consent.gate import Answer
from privacy_hub.api.auth import current_principal, require, require_purpose
from privacy_hub.api.customers import customer_id_or_404
from privacy_hub.api.pagination import decode_cursor, encode_cursor
from privacy_hub.api.problems import Problem
from privacy_hub.gate.checklog import CheckLog
from privacy_hub.gate.checks import Checker, Reader
from privacy_hub.schemas import Strict, UtcDateTime
from privacy_hub.vault.models import CustomerEvent
from privacy_hub.web.context import db, hub, read_only_request

blp = Blueprint("gate", __name__, url_prefix="/api/v1",
                description="The gate: check before you email, profile, track or share.")

MAX_BATCH = 10_000
MAX_AUDIENCE_PAGE = 100_000
MAX_EVENTS = 1_000
#: the event type that makes a customer of a prospect (the soft opt-in's relationship)
PURCHASE = "purchase"
gatekeeper = Checker()


def checklog() -> CheckLog:
    return hub().checklog


_UUID_RE = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_UUID = re.compile(_UUID_RE)
#: a newline-joined list of UUIDs (``$`` is not used: it would also match before a newline)
_UUIDS = re.compile(f"{_UUID_RE}(?:\n{_UUID_RE})*")


def _valid_uuid(value: str) -> bool:
    return _UUID.fullmatch(value) is not None


_REASONS = ("granted", "not_granted", "withdrawn", "expired", "pending_confirmation",
            "reconsent_required", "objected", "restricted", "erased", "unknown_customer",
            "legal_basis")


class CheckQuery(ma.Schema):
    customer_id = ma.fields.String(required=True, validate=validate.Length(min=1, max=64))
    purpose = ma.fields.String(required=True, validate=validate.Length(min=1, max=100))
    at = UtcDateTime(metadata={
        "description": "Answer as it held at this time (needs audit:read)"})


class CheckResult(ma.Schema):
    customer_id = ma.fields.String()
    purpose = ma.fields.String()
    allowed = ma.fields.Boolean()
    legal_basis = ma.fields.String()
    reason = ma.fields.String(metadata={"enum": list(_REASONS)})
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


_PARSER = Blueprint.ARGUMENTS_PARSER
# Instances, not classes: given a class, webargs builds a new schema on every request.
_CHECK_QUERY, _BATCH_CHECK, _AUDIENCE_QUERY = CheckQuery(), BatchCheck(), AudienceQuery()

F = TypeVar("F", bound=Callable[..., Any])


def _documented(schema: ma.Schema, location: str) -> Callable[[F], F]:
    """Document ``schema`` as ``blp.arguments(schema, location=...)`` does, without parsing
    it on every request: the view parses the common case by hand and hands anything else
    to webargs (_parsed), so every error is the same problem document as before."""

    def decorator(fn: F) -> F:
        apidoc = deepcopy(getattr(fn, "_apidoc", {}))
        docs = apidoc.setdefault("arguments", {})
        docs.setdefault("parameters", []).append({"in": location, "required": True,
                                                  "schema": schema})
        docs.setdefault("responses", {})[422] = http.HTTPStatus(422).name
        fn._apidoc = apidoc  # type: ignore[attr-defined]
        return fn

    return decorator


def _parsed(schema: ma.Schema, location: str) -> dict[str, Any]:
    """What ``blp.arguments`` would have passed: webargs' parse, or its 400/422."""
    parsed: dict[str, Any] = _PARSER.parse(schema, request, location=location)
    return parsed


def _json(body: str, status: int = 200) -> Response:
    return current_app.response_class(body, status=status, mimetype="application/json")


def _answer(customer_id: str, purpose: str, d: Answer) -> Response:
    return _json(json.dumps({
        "customer_id": customer_id, "purpose": purpose, "allowed": d.allowed,
        "legal_basis": str(d.legal_basis), "reason": str(d.reason),
        "valid_until": rfc3339(d.valid_until)}, separators=(",", ":")))


def _past(query: dict[str, Any]) -> Answer:
    """An answer about the past (`at`): audit:read only, rebuilt from the history."""
    if "audit:read" not in current_principal().scopes:
        raise Problem(403, "Answers about the past need the `audit:read` scope.",
                      type_="missing-scope", required_scope="audit:read")
    cid, purpose, session = query["customer_id"], query["purpose"], db()
    if _valid_uuid(cid):
        return gatekeeper.check_at(session, cid, purpose, query["at"])
    with Reader.connect(hub().engine) as reader:
        return gatekeeper.decide_one(reader, None, purpose, utcnow())


@blp.route("/consent-check")
class ConsentCheck(MethodView):
    @read_only_request
    @require("consents:read")
    @_documented(_CHECK_QUERY, "query")
    @blp.response(200, CheckResult)
    def get(self) -> Response:
        """Is this use allowed for this customer now (or, with `at`, then)? Unknown purpose: 404."""
        # The hot path: two plain query arguments checked by hand (anything unusual goes
        # through the schema), one statement on a pooled driver connection outside any
        # transaction (it sees every committed write), the answer serialised directly.
        args = request.args
        cid, purpose = args.get("customer_id"), args.get("purpose")
        if not cid or not purpose or len(cid) > 64 or len(purpose) > 100 or "at" in args:
            query = _parsed(_CHECK_QUERY, "query")
            cid, purpose = query["customer_id"], query["purpose"]
        else:
            query = None
        require_purpose(purpose)
        valid = _valid_uuid(cid)
        if query is not None and query.get("at") is not None:
            decision = _past(query)
        else:
            with Reader.connect(hub().engine) as reader:
                decision = gatekeeper.decide_one(reader, cid if valid else None, purpose,
                                                 utcnow())
        checklog().add(current_principal().name, cid if valid else None, purpose,
                       decision.allowed, str(decision.reason), "check")
        return _answer(cid, purpose, decision)

    @read_only_request
    @require("consents:read")
    @_documented(_BATCH_CHECK, "json")
    @blp.response(200, BatchResult)
    def post(self) -> Response:
        """Check up to 10,000 customers for one purpose; results in the same order."""
        body = _batch_body()
        purpose, ids = body["purpose"], body["customer_ids"]
        require_purpose(purpose)
        if ids and max(map(len, ids)) > 64:
            too_long = [i for i, cid in enumerate(ids) if len(cid) > 64]
            raise Problem(422, "Customer ids are at most 64 characters.",
                          errors={f"customer_ids.{i}": ["longer than 64 characters"]
                                  for i in too_long[:20]})
        # Usually every id is a UUID: one match over all of them, else one by one. (No id
        # of at most 64 characters can hide a newline between two UUIDs.)
        if _UUIDS.fullmatch("\n".join(ids)):
            valid: list[str | None] = list(ids)
        else:
            match = _UUID.fullmatch
            valid = [c if match(c) else None for c in ids]
        with Reader.connect(hub().engine) as reader:
            decisions, _ = gatekeeper.decide_many(reader, valid, purpose, utcnow())
        # Serialised directly, one fragment per distinct decision (the few distinct
        # Answer objects, by identity): the schema documents the shape; dumping 10,000
        # items through it would cost more than deciding them.
        tails: dict[int, str] = {}
        parts = []
        allowed = 0
        for cid, ok, d in zip(ids, valid, decisions, strict=True):
            tail = tails.get(id(d))
            if tail is None:
                tail = tails[id(d)] = (f',"allowed":{"true" if d.allowed else "false"},'
                                       f'"reason":"{d.reason}"}}')
            if d.allowed:
                allowed += 1
            parts.append(('{"customer_id":"' + cid + '"' if ok else
                          '{"customer_id":' + json.dumps(cid)) + tail)
        checklog().add(current_principal().name, None, purpose, allowed > 0,
                       f"{allowed}/{len(ids)}", "batch")
        return _json('{"results":[' + ",".join(parts) + "]}")


def _batch_body() -> dict[str, Any]:
    """The batch body: checked by hand when it is well-formed, else by the schema."""
    raw = request.get_data(cache=True)
    try:
        # Decoded strictly first: json.loads(bytes) would let raw UTF-8 surrogates through.
        body = json.loads(raw.decode()) if raw else None
    except ValueError:  # UnicodeDecodeError too: webargs answers 400
        body = None
    if (type(body) is dict and len(body) == 2 and "purpose" in body
            and "customer_ids" in body):
        purpose, ids = body["purpose"], body["customer_ids"]
        if (type(purpose) is str and 0 < len(purpose) <= 100 and type(ids) is list
                and len(ids) <= MAX_BATCH and set(map(type, ids)) <= {str}):
            return body
    return _parsed(_BATCH_CHECK, "json")


@blp.route("/audiences")
class Audiences(MethodView):
    @read_only_request
    @require("consents:read")
    @blp.arguments(_AUDIENCE_QUERY)
    @blp.response(200, AudiencePage)
    def post(self, body: dict[str, Any]) -> Response:
        """The customers a purpose allows: among `customer_ids`, or among all customers.

        Paginated over all customers by `limit` (up to 100,000 ids a page) and `cursor`.
        """
        purpose = body["purpose"]
        require_purpose(purpose)
        now = utcnow()
        with Reader.connect(hub().engine) as reader:
            if body.get("customer_ids") is not None:
                ids = [c for c in body["customer_ids"] if _valid_uuid(c)]
                decisions, _ = gatekeeper.decide_many(reader, ids, purpose, now)
                items = [cid for cid, d in zip(ids, decisions, strict=True) if d.allowed]
                nxt = None
            else:
                position = decode_cursor(body["cursor"], required_keys=("after",))
                after = str(position["after"]) if position else None
                items, last = gatekeeper.audience_page(reader, purpose, now, after=after,
                                                       limit=body["limit"])
                nxt = encode_cursor({"after": last}) if last else None
        checklog().add(current_principal().name, None, purpose, bool(items), str(len(items)),
                       "audience")
        return _json('{"purpose":' + json.dumps(purpose) + ',"items":' + _id_list(items)
                     + ',"next_cursor":' + json.dumps(nxt) + "}")


def _id_list(ids: list[str]) -> str:
    """A JSON array of ids: joined directly when no id needs escaping (the hub's ids are
    UUIDs), which for 100,000 ids is several times faster than json.dumps."""
    plain = "".join(ids)
    if plain.isascii() and plain.isprintable() and '"' not in plain and "\\" not in plain:
        return '["' + '","'.join(ids) + '"]' if ids else "[]"
    return json.dumps(ids)


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
    occurred_at = UtcDateTime(required=True)
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
            if e["type"] == PURCHASE:  # the soft opt-in's customer relationship
                flag_service.record_purchase(session, e["customer_id"], e["occurred_at"],
                                             actor=current_principal().actor)
        for cid, count in per_customer.items():
            audit.record(session, actor=current_principal().actor, action="events.ingested",
                         customer_id=cid, details={"count": count})
        return {"accepted": accepted, "dropped": len(events) - accepted}
