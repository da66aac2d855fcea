"""Customers (data subjects): create-or-update, lookup, read, rectify, erase."""

from __future__ import annotations

import http
import json
import uuid
from collections.abc import Callable
from copy import deepcopy
from functools import wraps
from typing import Any, TypeVar

import marshmallow as ma
from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate

import audit
from consent import flags as processing_flags
from consent.domain_events import DomainEvent, JSONValue, emit
from privacy_hub.api.auth import current_principal, require
from privacy_hub.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from privacy_hub.api.idempotency import idempotent, set_subject
from privacy_hub.api.problems import Problem, committing, unavailable
from privacy_hub.schemas import (
    CustomerCreateSchema,
    CustomerPatchSchema,
    CustomerSchema,
    LookupResultSchema,
    LookupSchema,
    Strict,
    fast_customer_fields,
    fast_lookup,
)
from privacy_hub.vault.models import PERSONAL_FIELDS
from privacy_hub.vault.service import NotLogged
from privacy_hub.web.context import db, hot_path, hub, read_only_request

# Instances, not classes: given a class, webargs builds a new schema on every request.
_CREATE, _LOOKUP, _PATCH = CustomerCreateSchema(), LookupSchema(), CustomerPatchSchema()

blp = Blueprint("customers", __name__, url_prefix="/api/v1/customers",
                description="Customers (data subjects) in the encrypted vault.")


F = TypeVar("F", bound=Callable[..., Any])
_PARSER = Blueprint.ARGUMENTS_PARSER
_JSON = json.JSONEncoder(separators=(",", ":")).encode


def json_body(schema: ma.Schema) -> Callable[[F], F]:
    """Document ``schema`` as the JSON body, as ``blp.arguments(schema)`` does, without
    parsing: the view loads the body itself with load_body()."""

    def decorator(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)

        apidoc = deepcopy(getattr(wrapper, "_apidoc", {}))
        docs = apidoc.setdefault("arguments", {})
        docs.setdefault("parameters", []).append({"in": "json", "required": True,
                                                  "schema": schema})
        docs.setdefault("responses", {})[422] = http.HTTPStatus(422).name
        wrapper._apidoc = apidoc  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


def load_body(schema: ma.Schema, fast: Callable[[object], dict[str, Any] | None]
              ) -> dict[str, Any]:
    """The JSON body loaded by ``fast`` when it can, else by ``schema`` through webargs
    (as ``blp.arguments`` would: the same 400 and 422 problem documents)."""
    raw = request.get_data(cache=True)
    if raw:
        try:
            # Strict UTF-8 first, as webargs decodes (json.loads would let surrogates and
            # UTF-16 through); UnicodeDecodeError is a ValueError.
            loaded = fast(json.loads(raw.decode("utf-8")))
        except ValueError:
            loaded = None
        if loaded is not None:
            return loaded
    parsed: dict[str, Any] = _PARSER.parse(schema, request, location="json")
    return parsed


def json_response(body: Any, status: int = 200) -> Response:
    return Response(_JSON(body), status=status, mimetype="application/json")


def customer_id_or_404(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise Problem(404, "No customer with this id.") from None


@blp.route("")
class Customers(MethodView):
    @require("customers:write")
    @idempotent
    @json_body(_CREATE)
    @blp.response(201, CustomerSchema, description="Created")
    @blp.alt_response(200, schema=CustomerSchema, description="Updated an existing customer")
    def post(self) -> Any:
        """Create a customer, or update the one with this external_id or else email."""
        hot = hot_path()
        # A new customer: one short group-committed transaction. With an Idempotency-Key
        # the stored response must commit with the change: the request's session does it.
        if hot is None or request.headers.get(IDEMPOTENCY_HEADER) is not None:
            return self._upsert(load_body(_CREATE, fast_customer_fields))
        with hot.writer.upcoming():
            fields = load_body(_CREATE, fast_customer_fields)
            with committing():
                created = hub().vault.create_new(hot, fields, actor=current_principal().actor)
        if created is not None:
            return json_response(created, 201)
        return self._upsert(fields)

    @staticmethod
    def _upsert(fields: dict[str, Any]) -> tuple[dict[str, Any], int]:
        profile, was_created = hub().vault.upsert(db(), fields, actor=current_principal().actor)
        set_subject(profile["id"])
        return profile, 201 if was_created else 200


@blp.route("/lookup")
class Lookup(MethodView):
    @require("customers:read")
    @read_only_request  # no write lock while reading; the audit entry is group-committed
    @json_body(_LOOKUP)
    @blp.response(200, LookupResultSchema)
    def post(self) -> Any:
        """Find customers by exact email, phone or external id; returns ids only."""
        actor = current_principal().actor
        hot = hot_path()
        if hot is None:
            ids = hub().vault.lookup(db(), actor=actor, **load_body(_LOOKUP, fast_lookup))
        else:
            with hot.writer.upcoming():  # its audit entry joins the next group commit
                query = load_body(_LOOKUP, fast_lookup)
                try:
                    ids = hub().vault.lookup(None, actor=actor, hot=hot, **query)
                except NotLogged:
                    raise unavailable() from None
        return json_response({"items": [{"id": i} for i in ids]})


@blp.route("/<string:customer_id>")
class CustomerItem(MethodView):
    @require("customers:read")
    @read_only_request  # no write lock while reading; the audit entry is group-committed
    @blp.response(200, CustomerSchema)
    def get(self, customer_id: str) -> dict[str, Any]:
        """The full profile, decrypted, with its status (audited)."""
        return hub().vault.read(db(), customer_id_or_404(customer_id),
                                actor=current_principal().actor)

    @require("customers:write")
    @idempotent
    @blp.arguments(_PATCH)
    @blp.response(200, CustomerSchema)
    def patch(self, changes: dict[str, Any], customer_id: str) -> dict[str, Any]:
        """Rectify fields (Art. 16); `null` removes an optional field. Every system with a
        webhook is told which fields changed (`customer.rectified`, Art. 19)."""
        cid = customer_id_or_404(customer_id)
        set_subject(cid)
        session = db()
        profile = hub().vault.rectify(session, cid, changes, actor=current_principal().actor)
        if changes:
            names: list[JSONValue] = [str(name) for name in sorted(changes)]
            emit(session, DomainEvent("customer.rectified", {
                "customer_id": cid, "fields": names}, customer_id=cid))
        return profile

    @require("customers:write")
    @blp.response(200, CustomerSchema)
    def delete(self, customer_id: str) -> dict[str, Any]:
        """Erase at once by crypto-shredding: the customer's data key is destroyed.

        Returns the tombstone. Repeating it is harmless. For an erasure request from the
        customer, with downstream systems told, use `POST /api/v1/requests`.
        """
        cid = customer_id_or_404(customer_id)
        session = db()
        hub().vault.crypto_shred(session, cid, actor=current_principal().actor)
        # as an erasure request does: the gate's flags and their history say so too
        processing_flags.mark_erased(session, cid, actor=current_principal().actor)
        return hub().vault.profile(session, hub().vault.get_row(session, cid))


class StatementInSchema(Strict):
    text = ma.fields.String(required=True, validate=validate.Length(min=1, max=5000),
                            metadata={"description": "the subject's statement, as they gave it"})
    concerns = ma.fields.List(
        ma.fields.String(validate=validate.OneOf(PERSONAL_FIELDS)), load_default=list,
        validate=validate.Length(max=len(PERSONAL_FIELDS)),
        metadata={"description": "the customer fields it concerns (optional)"})


class StatementSchema(ma.Schema):
    id = ma.fields.String(metadata={"format": "uuid"})
    customer_id = ma.fields.String(metadata={"format": "uuid"})
    concerns = ma.fields.List(ma.fields.String(), metadata={
        "description": "the customer fields it concerns"})
    text = ma.fields.String()
    added_at = ma.fields.String(metadata={"format": "date-time"})
    added_by = ma.fields.String(metadata={"description": "who attached it (kind:id)"})


class StatementListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(StatementSchema))


@blp.route("/<string:customer_id>/statements")
class Statements(MethodView):
    @require("customers:read")
    @read_only_request
    @blp.response(200, StatementListSchema)
    def get(self, customer_id: str) -> dict[str, Any]:
        """Supplementary statements attached to the customer, oldest first (audited)."""
        cid = customer_id_or_404(customer_id)
        session = db()
        vault = hub().vault
        row = vault.get_row(session, cid)
        if row.status == "erased":
            return {"items": []}
        audit.record(session, actor=current_principal().actor, action="customer.statements_read",
                     customer_id=cid, details={})
        return {"items": vault.statements(session, cid)}

    @require("customers:write")
    @idempotent
    @blp.arguments(StatementInSchema)
    @blp.response(201, StatementSchema)
    def post(self, body: dict[str, Any], customer_id: str) -> dict[str, Any]:
        """Attach a supplementary statement (Art. 16: completing incomplete data "by means
        of providing a supplementary statement"). It is shown in the access export; 409 for
        an erased customer."""
        cid = customer_id_or_404(customer_id)
        set_subject(cid)
        return hub().vault.add_statement(db(), cid, body["text"], concerns=body["concerns"],
                                         actor=current_principal().actor)
