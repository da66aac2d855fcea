"""Consent decisions, current state, history, receipts (API.md "Consent")."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
from typing import Any

import marshmallow as ma
from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate
from sqlalchemy import Connection

from consent import ledger as ledger_mod
from consent import purposes as registry
from consent.ledger import Decision
from privacy_hub.api.auth import current_principal, require, require_purpose
from privacy_hub.api.customers import customer_id_or_404, json_body, json_response, load_body
from privacy_hub.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from privacy_hub.api.idempotency import idempotent, set_subject
from privacy_hub.api.problems import Problem, committing
from privacy_hub.gate.checks import Checker, Reader
from privacy_hub.jobs import outbox
from privacy_hub.schemas import Strict, UtcDateTime
from privacy_hub.unsubscribe import make_token
from privacy_hub.vault.errors import CustomerNotFound
from privacy_hub.vault.service import HotPath
from privacy_hub.web.context import db, hot_path, hub, read_only_request

blp = Blueprint("consents", __name__, url_prefix="/api/v1",
                description="Consent decisions with proof: the ledger, current state, receipts.")

MAX_BATCH = 100
gatekeeper = Checker()


class EvidenceSchema(Strict):
    gpc = ma.fields.Boolean(metadata={"description": "Global Privacy Control signal was on"})
    ip_address = ma.fields.String(validate=validate.Length(max=64), load_only=True, metadata={
        "description": "The client's address; only a keyed hash is stored"})
    user_agent = ma.fields.String(validate=validate.Length(max=512))
    ui_element = ma.fields.String(validate=validate.Length(max=200),
                                  metadata={"description": "e.g. checkout-newsletter-checkbox"})
    ui_version = ma.fields.String(validate=validate.Length(max=100))

    @ma.validates("ip_address")
    def _ip(self, value: str, **_: Any) -> None:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ma.ValidationError("not an IP address") from None


class DecisionSchema(Strict):
    purpose = ma.fields.String(required=True, validate=validate.Length(min=1, max=100))
    granted = ma.fields.Boolean(required=True, metadata={"description": "true: given; false: "
                                                         "refused, or withdrawn if one was in force"})
    source = ma.fields.String(validate=validate.Length(min=1, max=100),
                              metadata={"description": "Defaults to the calling system's name"})
    collection_method = ma.fields.String(load_default="api", validate=validate.Regexp(
        r"^[a-z][a-z0-9_]{0,39}$", error="a lowercase code, e.g. web_form, app, call_centre"))
    notice_version = ma.fields.String(validate=validate.Length(min=1, max=64))
    language = ma.fields.String(load_default="en", validate=validate.Regexp(
        r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", error="a language tag, e.g. en or de-DE"))
    collected_at = UtcDateTime()
    consent_type = ma.fields.String(load_default="regular",
                                    validate=validate.OneOf(["regular", "explicit"]))
    evidence = ma.fields.Nested(EvidenceSchema, load_default=dict)


class BatchSchema(Strict):
    decisions = ma.fields.List(ma.fields.Nested(DecisionSchema), required=True,
                               validate=validate.Length(min=1, max=MAX_BATCH))


class RecordedSchema(ma.Schema):
    id = ma.fields.String()
    purpose = ma.fields.String()
    purpose_version = ma.fields.Integer()
    granted = ma.fields.Boolean()
    status = ma.fields.String()
    recorded_at = ma.fields.String()
    receipt_id = ma.fields.String()


class RecordedList(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(RecordedSchema))


class StateSchema(ma.Schema):
    purpose = ma.fields.String()
    purpose_version = ma.fields.Integer()
    legal_basis = ma.fields.String()
    status = ma.fields.String(metadata={"enum": ["granted", "refused", "withdrawn", "expired",
                                                 "pending_confirmation", "reconsent_required",
                                                 "not_set"]})
    granted_at = ma.fields.String(allow_none=True)
    expires_at = ma.fields.String(allow_none=True)
    source = ma.fields.String(allow_none=True)


class StateList(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(StateSchema))


class HistoryList(ma.Schema):
    items = ma.fields.List(ma.fields.Dict())


class ReceiptSchema(ma.Schema):
    receipt_id = ma.fields.String()
    receipt = ma.fields.Dict()
    jws = ma.fields.String()


class JwksSchema(ma.Schema):
    keys = ma.fields.List(ma.fields.Dict(), metadata={
        "description": 'JWKS: {"kty": "OKP", "crv": "Ed25519", "x": ..., "kid": ...}'})


class ConfirmSchema(Strict):
    token = ma.fields.String(required=True, validate=validate.Length(min=10, max=200))


# Instances, not classes: given a class, webargs builds a new schema on every request.
_DECISION, _BATCH = DecisionSchema(), BatchSchema()

#: the fields of the common decision body, checked by hand (_fast_decision)
_FAST_TEXT = {"source": 100}
_FAST_CODES = {"collection_method": (re.compile(r"[a-z][a-z0-9_]{0,39}"), "api"),
               "language": (re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*"), "en")}
_CONSENT_TYPES = ("regular", "explicit")
_FAST_KEYS = frozenset({"purpose", "granted", "consent_type", *_FAST_TEXT, *_FAST_CODES})


def _fast_decision(body: object) -> dict[str, Any] | None:
    """The common decision body (purpose, granted, and at most source, collection_method,
    language, consent_type) loaded as DecisionSchema loads it, without marshmallow; None
    for anything else, so that the schema loads it (and words any error) as it always
    has. Checked against the schema in tests/web/test_consent_api.py."""
    if type(body) is not dict or not _FAST_KEYS.issuperset(body):
        return None
    purpose, granted = body.get("purpose"), body.get("granted")
    if type(purpose) is not str or not 1 <= len(purpose) <= 100 or type(granted) is not bool:
        return None
    out: dict[str, Any] = {"purpose": purpose, "granted": granted}
    for name, longest in _FAST_TEXT.items():
        if name in body:
            value = body[name]
            if type(value) is not str or not 1 <= len(value) <= longest:
                return None
            out[name] = value
    for name, (pattern, default) in _FAST_CODES.items():
        value = body.get(name, default)
        if type(value) is not str or pattern.fullmatch(value) is None:
            return None
        out[name] = value
    consent_type = body.get("consent_type", "regular")
    if consent_type not in _CONSENT_TYPES:
        return None
    out["consent_type"] = consent_type
    out["evidence"] = {}
    return out


def _gpc_header() -> bool:
    """Sec-GPC counts only when exactly "1"; several headers count if one is "1"."""
    values = [v.strip() for h in request.headers.getlist("Sec-GPC") for v in h.split(",")]
    return "1" in values


def _hash_ip(address: str) -> str:
    key = hub().keyring.hub_key(db(), "app_secrets")
    return hmac.new(key, b"ip|" + address.encode(), hashlib.sha256).hexdigest()[:32]


def _decision(body: dict[str, Any]) -> Decision:
    principal = current_principal()
    require_purpose(body["purpose"])
    evidence = dict(body.get("evidence") or {})
    if "ip_address" in evidence:
        evidence["ip_hash"] = _hash_ip(evidence.pop("ip_address"))
    if _gpc_header():
        evidence["gpc"] = True
    return Decision(
        purpose=body["purpose"], granted=body["granted"],
        source=body.get("source") or principal.name,
        collection_method=body["collection_method"], notice_version=body.get("notice_version"),
        notice_language=body["language"], collected_at=body.get("collected_at"),
        consent_type=body["consent_type"], evidence=evidence)


def _customer(customer_id: str) -> str:
    cid = customer_id_or_404(customer_id)
    # Read before the request's transaction starts (on SQLite, a write transaction holds
    # the database's write lock from its first statement), status only, no ORM row.
    with Reader.connect(hub().engine) as reader:
        status = gatekeeper.customer_status(reader, cid)
    if status is None:
        raise CustomerNotFound(cid)
    if status == "erased":
        raise Problem(409, "This customer was erased; no consent can be recorded for them.",
                      type_="customer-erased")
    set_subject(cid)
    return cid


def _record_grouped(hot: HotPath, customer_id: str,
                    decision: Decision) -> ledger_mod.Recorded | None:
    """``decision`` recorded in a group-committed transaction (hot.writer); None, having
    changed nothing, when it needs the request's session (Ledger.record_on)."""
    h = hub()
    actor = current_principal().actor

    def work(conn: Connection, shared: dict[str, Any]) -> tuple[Any, list[Any]]:
        done = h.ledger.record_on(conn, shared, customer_id, decision, actor=actor)
        if done is None:
            return (None, False), []
        recorded, entry, event = done
        return (recorded, outbox.write_events(h.sessions, conn, shared, [event])), [entry]

    recorded: ledger_mod.Recorded | None
    with committing():
        recorded, wrote_jobs = hot.writer.run(work)
    if wrote_jobs:
        outbox.jobs_written()
    return recorded


def _visible(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    principal = current_principal()
    return [i for i in items if principal.may_use_purpose(i["purpose"])]


@blp.route("/customers/<string:customer_id>/consents")
class Consents(MethodView):
    @require("consents:write")
    @idempotent
    @json_body(_DECISION)
    @blp.response(201, RecordedSchema)
    def post(self, customer_id: str) -> Any:
        """Record one decision, with its proof; returns the resulting status and receipt id.

        A browser's `Sec-GPC: 1` (or `"gpc": true` in `evidence`) also refuses every
        sale-or-sharing purpose the customer did not explicitly grant here.
        """
        body = load_body(_DECISION, _fast_decision)
        hot = hot_path()
        # One short group-committed transaction (the event, the state, the receipt, the
        # audit entry and the outbox rows), unless the request needs the session: an
        # Idempotency-Key (its stored response commits with the change), an address to
        # hash (the key store), a GPC signal or a double opt-in (more than one decision,
        # a token and a mail).
        if (hot is not None and request.headers.get(IDEMPOTENCY_HEADER) is None
                and "ip_address" not in (body.get("evidence") or {})):
            # Announced before the customer's read, so that a batch about to begin waits
            # for this request rather than leave it for the next commit.
            with hot.writer.upcoming():
                cid = _customer(customer_id)
                grouped = _record_grouped(hot, cid, _decision(body))
            if grouped is not None:
                # As RecordedSchema would dump it, without marshmallow.
                return json_response(grouped.public(), 201)
        else:
            cid = _customer(customer_id)
        recorded = hub().ledger.record(db(), cid, _decision(body), actor=current_principal().actor)
        return recorded.public()

    @read_only_request
    @require("consents:read")
    @blp.response(200, StateList)
    def get(self, customer_id: str) -> dict[str, Any]:
        """The current state for every purpose."""
        cid = customer_id_or_404(customer_id)
        hub().vault.get_row(db(), cid)
        return {"items": _visible(ledger_mod.current_states(db(), cid))}


@blp.route("/customers/<string:customer_id>/consents:batch")
class ConsentBatch(MethodView):
    @require("consents:write")
    @idempotent
    @blp.arguments(_BATCH)
    @blp.response(201, RecordedList)
    def post(self, body: dict[str, Any], customer_id: str) -> dict[str, Any]:
        """Record up to 100 decisions atomically: all, or none with each bad index named."""
        cid = _customer(customer_id)
        decisions = [_decision(d) for d in body["decisions"]]
        recorded = hub().ledger.record_many(db(), cid, decisions, actor=current_principal().actor)
        return {"items": [r.public() for r in recorded]}


@blp.route("/customers/<string:customer_id>/consents/history")
class ConsentHistory(MethodView):
    @read_only_request
    @require("consents:read")
    @blp.response(200, HistoryList)
    def get(self, customer_id: str) -> dict[str, Any]:
        """Every recorded decision, oldest first, with its evidence and receipt id."""
        cid = customer_id_or_404(customer_id)
        hub().vault.get_row(db(), cid)
        return {"items": _visible(ledger_mod.history(db(), cid))}


@blp.route("/customers/<string:customer_id>/consents/<string:event_id>")
class ConsentEventItem(MethodView):
    @read_only_request
    @require("consents:read")
    @blp.response(200, HistoryList)
    def get(self, customer_id: str, event_id: str) -> dict[str, Any]:
        """One ledger event. Ledger events are never changed or deleted (no PUT, no DELETE)."""
        cid = customer_id_or_404(customer_id)
        items = [e for e in _visible(ledger_mod.history(db(), cid)) if e["id"] == event_id]
        if not items:
            raise Problem(404, "No such consent event for this customer.")
        return {"items": items}


class UnsubscribeLinkIn(Strict):
    purpose = ma.fields.String(required=True, validate=validate.Length(min=1, max=100))


class UnsubscribeLinkOut(ma.Schema):
    url = ma.fields.String(metadata={"description": "One-click link for the message body"})
    list_unsubscribe = ma.fields.String(metadata={"description": "List-Unsubscribe header value"})
    list_unsubscribe_post = ma.fields.String(metadata={
        "description": "List-Unsubscribe-Post header value (RFC 8058)"})


@blp.route("/customers/<string:customer_id>/unsubscribe-link")
class UnsubscribeLink(MethodView):
    @read_only_request
    @require("consents:write")
    @blp.arguments(UnsubscribeLinkIn)
    @blp.response(200, UnsubscribeLinkOut)
    def post(self, body: dict[str, Any], customer_id: str) -> dict[str, Any]:
        """A one-click unsubscribe link for a marketing message (ePrivacy Art. 13(2))."""
        purpose = body["purpose"]
        require_purpose(purpose)
        registry.get(db(), purpose)
        cid = customer_id_or_404(customer_id)
        hub().vault.get_row(db(), cid)
        token = make_token(hub().keyring.hub_key(db(), "app_secrets"), cid, purpose)
        url = f"{hub().settings.base_url}/unsubscribe/{token}"
        return {"url": url, "list_unsubscribe": f"<{url}>",
                "list_unsubscribe_post": "List-Unsubscribe=One-Click"}


@blp.route("/receipts/<string:receipt_id>")
class ReceiptItem(MethodView):
    @read_only_request
    @require("consents:read")
    @blp.response(200, ReceiptSchema)
    def get(self, receipt_id: str) -> dict[str, Any]:
        """A signed consent receipt (Kantara v1.1 / ISO/IEC TS 27560), verifiable offline."""
        row = ledger_mod.receipt(db(), receipt_id)
        if row is None:
            raise Problem(404, "No receipt with this id.")
        receipt = json.loads(row.payload)
        require_purpose(receipt.get("iso27560", {}).get("purpose_id", ""))
        return {"receipt_id": row.id, "receipt": receipt, "jws": row.jws}


@blp.route("/keys/receipts")
class ReceiptKeys(MethodView):
    @blp.response(200, JwksSchema)
    def get(self) -> dict[str, Any]:
        """The JWKS that verifies receipts (public, no authentication)."""
        return hub().receipt_jwks()


@blp.route("/consents/confirm")
class ConsentConfirm(MethodView):
    @blp.arguments(ConfirmSchema)
    @blp.response(200, RecordedSchema)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Double opt-in: confirm with the token from the emailed link (no API key needed)."""
        return hub().ledger.confirm(db(), body["token"]).public()
