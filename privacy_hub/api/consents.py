"""Consent decisions, current state, history, receipts (API.md "Consent")."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import marshmallow as ma
from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate

from privacy_hub.api.auth import current_principal, require
from privacy_hub.api.bodies import documented, json_response, load_body, parsed
from privacy_hub.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from privacy_hub.api.idempotency import idempotent, set_subject
from privacy_hub.api.pagination import PAGE, next_cursor_field, page_of
from privacy_hub.api.problems import flatten_errors
from privacy_hub.schemas import Strict, UtcDateTime
from privacy_hub.usecases import consents
from privacy_hub.usecases.customers import canonical_id
from privacy_hub.web.context import db, gpc_signal, hot_path, hub, read_only_request

blp = Blueprint("consents", __name__, url_prefix="/api/v1",
                description="Consent decisions with proof: the ledger, current state, receipts.")

MAX_BATCH = 100


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
        r"^[a-z][a-z0-9_]{0,39}$", error="a lowercase code, e.g. web_form, app, call_centre"),
        metadata={"description": (
            "How the decision was collected. A method naming `import`, `bulk`, `feed` or "
            "`migration` (e.g. `partner_import`) says the customer did not act at that "
            "moment: such a grant never lifts a suppression (R-ERASE-05, gate reason "
            "`suppressed`); any other grant that leaves a direct-marketing purpose "
            "`granted` does.")})
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


class BatchShape(Strict):
    """The batch without its decisions loaded: each is loaded on its own (_decisions), so
    that a 422 names every bad one, with the domain's errors of the others."""

    decisions = ma.fields.List(ma.fields.Raw(), required=True,
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
    next_cursor = next_cursor_field()


_EVENTS = (
    "Ledger events. `evidence` is the decision's evidence ({} when none was given), or "
    "null once purged (R-CREC-06): `evidence_purged_at` and `evidence_purge_reason` "
    "(`retention`: its retention after the consent ended ran out; `erasure`) then say "
    "when and why, and `evidence_sha256` (also in the receipt and the audit entry) "
    "still names what was recorded")


class HistoryList(ma.Schema):
    items = ma.fields.List(ma.fields.Dict(), metadata={"description": _EVENTS})
    next_cursor = next_cursor_field()


class EventItem(ma.Schema):
    items = ma.fields.List(ma.fields.Dict(), metadata={
        "description": "exactly the one event; " + _EVENTS})


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
_DECISION, _BATCH, _BATCH_SHAPE = DecisionSchema(), BatchSchema(), BatchShape()

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



def _caller() -> dict[str, Any]:
    """Who records: the calling system (the default source), the purposes it may use, and
    whether the browser sent a Global Privacy Control signal."""
    principal = current_principal()
    return {"actor": principal.actor, "source": principal.name, "gpc": gpc_signal(),
            "may_use": principal.may_use_purpose}


@blp.route("/customers/<string:customer_id>/consents")
class Consents(MethodView):
    @require("consents:write")
    @idempotent
    @documented(_DECISION)
    @blp.response(201, RecordedSchema)
    def post(self, customer_id: str) -> Any:
        """Record one decision, with its proof; returns the resulting status and receipt id.

        A browser's `Sec-GPC: 1` (or `"gpc": true` in `evidence`) also refuses every
        sale-or-sharing purpose the customer did not explicitly grant here.
        """
        body = load_body(_DECISION, _fast_decision)
        cid = canonical_id(customer_id)
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
                grouped = consents.record_grouped(hub(), hot, cid, body, **_caller())
            if grouped is not None:
                set_subject(cid)
                # As RecordedSchema would dump it, without marshmallow.
                return json_response(grouped, 201)
            checked = True
        else:
            checked = False
        recorded = consents.record(hub(), db(), cid, body, customer_checked=checked, **_caller())
        set_subject(cid)
        return recorded

    @read_only_request
    @require("consents:read")
    @blp.arguments(PAGE, location="query")
    @blp.response(200, StateList)
    def get(self, page: dict[str, Any], customer_id: str) -> dict[str, Any]:
        """The current state for every purpose, by purpose key."""
        return page_of(consents.current_state(hub(), db(), canonical_id(customer_id),
                                              may_use=current_principal().may_use_purpose),
                       page, key="purpose")


@blp.route("/customers/<string:customer_id>/consents:batch")
class ConsentBatch(MethodView):
    @require("consents:write")
    @idempotent
    @documented(_BATCH)
    @blp.response(201, RecordedList)
    def post(self, customer_id: str) -> dict[str, Any]:
        """Record up to 100 decisions atomically: all, or none.

        A 422 names every bad decision by its index, whatever made it bad (a field missing
        or malformed, an unknown purpose, a purpose not based on consent, an unpublished
        notice), e.g. `"errors": {"decisions.0.granted": [...], "decisions.2.purpose":
        [...]}`; nothing is recorded then.
        """
        many, invalid = _decisions(parsed(_BATCH_SHAPE)["decisions"])
        cid = canonical_id(customer_id)
        items = consents.record_many(hub(), db(), cid, many, invalid=invalid, **_caller())
        set_subject(cid)
        return {"items": items}


def _decisions(raw: list[Any]) -> tuple[list[dict[str, Any]], dict[int, dict[str, list[str]]]]:
    """Each decision loaded by DecisionSchema: the loaded fields (of a bad one, those that
    loaded) and, by index, the errors of the bad ones, named ``decisions.<index>.<field>``."""
    many: list[dict[str, Any]] = []
    invalid: dict[int, dict[str, list[str]]] = {}
    for i, item in enumerate(raw):
        try:
            many.append(_DECISION.load(item))
        except ma.ValidationError as exc:
            valid = exc.valid_data
            many.append(valid if isinstance(valid, dict) else {})
            invalid[i] = flatten_errors(exc.messages, f"decisions.{i}")
    return many, invalid


@blp.route("/customers/<string:customer_id>/consents/history")
class ConsentHistory(MethodView):
    @read_only_request
    @require("consents:read")
    @blp.arguments(PAGE, location="query")
    @blp.response(200, HistoryList)
    def get(self, page: dict[str, Any], customer_id: str) -> dict[str, Any]:
        """Every recorded decision, oldest first, with its evidence and receipt id."""
        return page_of(consents.history(hub(), db(), canonical_id(customer_id),
                                        may_use=current_principal().may_use_purpose),
                       page, key="id")


@blp.route("/customers/<string:customer_id>/consents/<string:event_id>")
class ConsentEventItem(MethodView):
    @read_only_request
    @require("consents:read")
    @blp.response(200, EventItem)
    def get(self, customer_id: str, event_id: str) -> dict[str, Any]:
        """One ledger event. Ledger events are never changed or deleted (no PUT, no DELETE)."""
        return {"items": [consents.event(hub(), db(), canonical_id(customer_id), event_id,
                                         may_use=current_principal().may_use_purpose)]}


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
        return consents.unsubscribe_link(hub(), db(), customer_id, body["purpose"],
                                         may_use=current_principal().may_use_purpose)


@blp.route("/receipts/<string:receipt_id>")
class ReceiptItem(MethodView):
    @read_only_request
    @require("consents:read")
    @blp.response(200, ReceiptSchema)
    def get(self, receipt_id: str) -> dict[str, Any]:
        """A signed consent receipt (Kantara v1.1 / ISO/IEC TS 27560), verifiable offline."""
        return consents.receipt(db(), receipt_id, may_use=current_principal().may_use_purpose)


@blp.route("/keys/receipts")
class ReceiptKeys(MethodView):
    @read_only_request
    @blp.response(200, JwksSchema)
    def get(self) -> dict[str, Any]:
        """The JWKS that verifies receipts (public, no authentication): the current key
        and every retired one, so every receipt ever issued verifies offline."""
        return hub().receipt_jwks(db())


@blp.route("/consents/confirm")
class ConsentConfirm(MethodView):
    @blp.arguments(ConfirmSchema)
    @blp.response(200, RecordedSchema)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Double opt-in: confirm with the token from the emailed link (no API key needed)."""
        return consents.confirm(hub(), db(), body["token"])
