"""The gate (API.md "The gate"): may a service use a customer's data for a purpose?"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import marshmallow as ma
from flask import Response, g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate

from audit.clock import rfc3339
from consent.gate import Answer
from privacy_hub.api.auth import current_principal, require, require_purpose
from privacy_hub.api.bodies import documented, encode_json, json_response, load_body, parsed
from privacy_hub.api.pagination import encode_cursor, read_cursor
from privacy_hub.api.problems import Problem
from privacy_hub.schemas import Strict, UtcDateTime
from privacy_hub.usecases import checks
from privacy_hub.usecases.errors import Refused
from privacy_hub.web.context import db, hub, read_only_request

blp = Blueprint("gate", __name__, url_prefix="/api/v1",
                description="The gate: check before you email, profile, track or share.")

MAX_BATCH = 10_000
MAX_AUDIENCE_PAGE = 100_000
MAX_EVENTS = 1_000

_REASONS = ("granted", "not_granted", "withdrawn", "expired", "pending_confirmation",
            "reconsent_required", "objected", "restricted", "erased", "suppressed",
            "unknown_customer", "legal_basis")
_REASON_DOC = (
    "Why the gate answered as it did. `suppressed` (R-ERASE-05): the customer was made "
    "(created, imported) with an email or phone on the suppression list, kept after an "
    "erasure or an objection to direct marketing; every direct-marketing purpose is denied "
    "until the customer gives a fresh consent to direct marketing themselves (a grant that "
    "leaves a direct-marketing consent purpose `granted`, double opt-in confirmed, whose "
    "`collection_method` names no import, bulk load, feed or migration).")


_PROOF_DOC = (
    "R-GATE-03: the consent decision the answer rests on: {what}. Set when the answer comes "
    "from the customer's consent state for this purpose (reasons `granted`, `not_granted` "
    "after a refusal, `withdrawn`, `expired`, `pending_confirmation`, "
    "`reconsent_required`); null when it rests on no consent decision (a purpose on "
    "another legal basis, an unknown or erased customer, a restriction, an objection, the "
    "suppression list, no decision recorded yet).")


class ProofFields(ma.Schema):
    """The fields of an answer naming the consent decision it rests on (R-GATE-03)."""

    event_id = ma.fields.String(allow_none=True, metadata={"description": _PROOF_DOC.format(
        what="the id of its ledger event (`GET /api/v1/customers/{id}/consents/history`)")})
    receipt_id = ma.fields.String(allow_none=True, metadata={"description": _PROOF_DOC.format(
        what="the id of its signed consent receipt (`GET /api/v1/receipts/{receipt_id}`)")})
    notice_version = ma.fields.String(allow_none=True, metadata={
        "description": _PROOF_DOC.format(
            what="the version of the privacy notice shown with it (null as well when the "
                 "decision named none)")})
    purpose_version = ma.fields.Integer(allow_none=True, metadata={
        "description": _PROOF_DOC.format(
            what="the purpose version it was made for (below the purpose's current version "
                 "when the reason is `reconsent_required`)")})


class CheckQuery(ma.Schema):
    customer_id = ma.fields.String(required=True, validate=validate.Length(min=1, max=64))
    purpose = ma.fields.String(required=True, validate=validate.Length(min=1, max=100))
    at = UtcDateTime(metadata={
        "description": "Answer as it held at this time (needs audit:read)"})


class CheckResult(ProofFields):
    customer_id = ma.fields.String()
    purpose = ma.fields.String()
    allowed = ma.fields.Boolean()
    legal_basis = ma.fields.String()
    reason = ma.fields.String(metadata={"enum": list(_REASONS), "description": _REASON_DOC})
    valid_until = ma.fields.String(allow_none=True)


class BatchCheck(Strict):
    purpose = ma.fields.String(required=True, validate=validate.Length(min=1, max=100))
    # Plain strings, checked in one pass in the view: 10,000 per-item validators cost more
    # than the whole gate query.
    customer_ids = ma.fields.List(ma.fields.String(), required=True,
                                  validate=validate.Length(max=MAX_BATCH))


class BatchItem(ProofFields):
    customer_id = ma.fields.String()
    allowed = ma.fields.Boolean()
    reason = ma.fields.String(metadata={"enum": list(_REASONS), "description": _REASON_DOC})


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


# Instances, not classes: given a class, webargs builds a new schema on every request.
_CHECK_QUERY, _BATCH_CHECK, _AUDIENCE_QUERY = CheckQuery(), BatchCheck(), AudienceQuery()


def _answer(customer_id: str, purpose: str, a: Answer) -> Response:
    state = a.state
    return json_response({
        "customer_id": customer_id, "purpose": purpose, "allowed": a.allowed,
        "legal_basis": str(a.legal_basis), "reason": str(a.reason),
        "valid_until": rfc3339(a.valid_until),
        "event_id": state.event_id if state else None,
        "receipt_id": state.receipt_id if state else None,
        "notice_version": state.notice_version if state else None,
        "purpose_version": state.purpose_version if state else None})


@blp.route("/consent-check")
class ConsentCheck(MethodView):
    @read_only_request
    @require("consents:read")
    @documented(_CHECK_QUERY, "query")
    @blp.response(200, CheckResult)
    def get(self) -> Response:
        """Is this use allowed for this customer now (or, with `at`, then)? Unknown purpose: 404."""
        # The hot path: two plain query arguments checked by hand (anything unusual goes
        # through the schema).
        args = request.args
        cid, purpose = args.get("customer_id"), args.get("purpose")
        if not cid or not purpose or len(cid) > 64 or len(purpose) > 100 or "at" in args:
            query = parsed(_CHECK_QUERY, "query")
            cid, purpose = query["customer_id"], query["purpose"]
        else:
            query = None
        require_purpose(purpose)
        actor = current_principal().actor
        if query is not None and query.get("at") is not None:
            if "audit:read" not in current_principal().scopes:
                raise Problem(403, "Answers about the past need the `audit:read` scope.",
                              type_="missing-scope", required_scope="audit:read")
            answer = checks.check_at(hub(), db(), cid, purpose, query["at"], actor=actor)
        else:
            answer = checks.check(hub(), cid, purpose, actor=actor)
        return _answer(cid, purpose, answer)

    @read_only_request
    @require("consents:read")
    @documented(_BATCH_CHECK)
    @blp.response(200, BatchResult)
    def post(self) -> Response:
        """Check up to 10,000 customers for one purpose; results in the same order."""
        body = load_body(_BATCH_CHECK, _fast_batch)
        purpose, ids = body["purpose"], body["customer_ids"]
        require_purpose(purpose)
        answers = checks.check_batch(hub(), ids, purpose, actor=current_principal().actor)
        return Response(batch_json(ids, answers), mimetype="application/json")


def batch_json(ids: list[str], answers: checks.BatchAnswers) -> str:
    """The batch's answer: one item per asked id, in the asked order.

    Each distinct id's item is made once, a group of customers sharing an answer at a
    time, by C-level string operations (a template per group, filled by ``str.format``
    through ``map``), then the items are joined in the asked order: no Python code runs
    per item. The schema documents the shape.
    """
    items: dict[str, str] = {}
    for group in answers.groups:
        items.update(zip(group.ids, _group_items(group.answer, group.ids, group.proofs),
                          strict=True))
    unknown = "," + _batch_tail(answers.unknown) + _NO_PROOF
    for cid in set(ids).difference(items):  # unknown customers and strings no id can be
        items[cid] = '{"customer_id":' + encode_json(cid) + unknown
    return '{"results":[' + ",".join(map(items.__getitem__, ids)) + "]}"


def _group_items(answer: Answer, ids: list[str], proofs: str | None) -> Iterable[str]:
    """The items of a group of customers sharing ``answer`` (``ids``: UUIDs the hub made,
    put in as they are; ``proofs``: their "event:receipt" joined by commas, or None)."""
    tail = "," + _batch_tail(answer)
    template = '{{"customer_id":"{}"' + tail.replace("{", "{{").replace("}", "}}")
    if proofs is None:
        return map((template + _NO_PROOF_FORMAT).format, ids)
    if len(proofs) == len(ids) * (_PROOF_LENGTH + 1) - 1:  # both ids everywhere
        # (split at the commas first: the text put in for the colon holds one)
        both = proofs.replace(",", "\n").replace(":", '","receipt_id":"').split("\n")
        return map((template + ',"event_id":"{}"}}').format, ids, both)
    return map((template + "{}").format, ids, map(_proof_json, proofs.split(",")))


_NO_PROOF = ',"event_id":null,"receipt_id":null}'
_NO_PROOF_FORMAT = _NO_PROOF.replace("}", "}}")
#: a proof holding both ids, "event:receipt" (UUIDs)
_PROOF_LENGTH = 36 + 1 + 36


def _batch_tail(a: Answer) -> str:
    """A batch item's fields after its customer id but for the event and receipt ids,
    without the leading comma."""
    state = a.state
    return encode_json({
        "allowed": a.allowed, "reason": a.reason,
        "notice_version": state.notice_version if state else None,
        "purpose_version": state.purpose_version if state else None})[1:-1]


def _proof_json(proof: str) -> str:
    """The event and receipt ids of a batch item from its proof ("event:receipt", both
    UUIDs the hub made, or empty where unknown)."""
    event, _, receipt = proof.partition(":")
    if not event:
        return _NO_PROOF
    if not receipt:
        return ',"event_id":"' + event + '","receipt_id":null}'
    return ',"event_id":"' + event + '","receipt_id":"' + receipt + '"}'


def _fast_batch(body: object) -> dict[str, Any] | None:
    """BatchCheck().load(body) for plainly valid bodies (the ids are checked in one pass
    by the use case); None: use the schema."""
    if (type(body) is dict and len(body) == 2 and "purpose" in body
            and "customer_ids" in body):
        purpose, ids = body["purpose"], body["customer_ids"]
        if (type(purpose) is str and 0 < len(purpose) <= 100 and type(ids) is list
                and len(ids) <= MAX_BATCH and set(map(type, ids)) <= {str}):
            return body
    return None


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
        if body.get("customer_ids") is not None:
            items, last = checks.audience(hub(), purpose, actor=current_principal().actor,
                                          customer_ids=body["customer_ids"], limit=body["limit"])
        else:
            position = read_cursor(body["cursor"], after=str)
            items, last = checks.audience(
                hub(), purpose, actor=current_principal().actor, limit=body["limit"],
                after=position["after"] if position else None)
        # Through the encoder, not the schema: 100,000 ids in about 45 ms.
        return json_response({"purpose": purpose, "items": items,
                              "next_cursor": encode_cursor({"after": last}) if last else None})


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
        try:
            return checks.read_for_purpose(hub(), db(), customer_id, query["purpose"],
                                           actor=current_principal().actor,
                                           may_use=current_principal().may_use_purpose)
        except Refused as refused:
            if refused.type_ == "gate-denied":
                g.commit_on_error = True  # the denial's audit entry is kept
            raise


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
        accepted, dropped = checks.ingest_events(hub(), db(), body["events"],
                                                 actor=current_principal().actor,
                                                 may_use=current_principal().may_use_purpose)
        return {"accepted": accepted, "dropped": dropped}
