"""Customers (data subjects): create-or-update, lookup, read, rectify, erase."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate

from privacy_hub.api.auth import current_principal, require
from privacy_hub.api.bodies import documented, json_response, load_body
from privacy_hub.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from privacy_hub.api.idempotency import idempotent, set_subject
from privacy_hub.api.pagination import PAGE, next_cursor_field, page_of
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
from privacy_hub.usecases import customers
from privacy_hub.usecases.customers import canonical_id
from privacy_hub.vault.models import PERSONAL_FIELDS
from privacy_hub.web.context import db, hot_path, hub, read_only_request

# Instances, not classes: given a class, webargs builds a new schema on every request.
_CREATE, _LOOKUP, _PATCH = CustomerCreateSchema(), LookupSchema(), CustomerPatchSchema()

blp = Blueprint("customers", __name__, url_prefix="/api/v1/customers",
                description="Customers (data subjects) in the encrypted vault.")


@blp.route("")
class Customers(MethodView):
    @require("customers:write")
    @idempotent
    @documented(_CREATE)
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
            created = customers.create_new(hub(), hot, fields, actor=current_principal().actor)
        if created is not None:
            return json_response(created, 201)
        return self._upsert(fields)

    @staticmethod
    def _upsert(fields: dict[str, Any]) -> tuple[dict[str, Any], int]:
        profile, was_created = customers.create_or_update(hub(), db(), fields,
                                                          actor=current_principal().actor)
        set_subject(profile["id"])
        return profile, 201 if was_created else 200


@blp.route("/lookup")
class Lookup(MethodView):
    @require("customers:read")
    @read_only_request  # no write lock while reading; the audit entry is group-committed
    @documented(_LOOKUP)
    @blp.response(200, LookupResultSchema)
    def post(self) -> Any:
        """Find customers by exact email, phone or external id; returns ids only."""
        actor = current_principal().actor
        hot = hot_path()
        if hot is None:
            ids = customers.lookup(hub(), db(), load_body(_LOOKUP, fast_lookup), actor=actor)
        else:
            with hot.writer.upcoming():  # its audit entry joins the next group commit
                ids = customers.lookup(hub(), None, load_body(_LOOKUP, fast_lookup),
                                       actor=actor, hot=hot)
        return json_response({"items": [{"id": i} for i in ids]})


@blp.route("/<string:customer_id>")
class CustomerItem(MethodView):
    @require("customers:read")
    @read_only_request  # no write lock while reading; the audit entry is group-committed
    @blp.response(200, CustomerSchema)
    def get(self, customer_id: str) -> dict[str, Any]:
        """The full profile, decrypted, with its status (audited)."""
        return customers.read(hub(), db(), canonical_id(customer_id),
                              actor=current_principal().actor)

    @require("customers:write")
    @idempotent
    @blp.arguments(_PATCH)
    @blp.response(200, CustomerSchema)
    def patch(self, changes: dict[str, Any], customer_id: str) -> dict[str, Any]:
        """Rectify fields (Art. 16); `null` removes an optional field. Every system with a
        webhook is told which fields changed (`customer.rectified`, Art. 19)."""
        cid = canonical_id(customer_id)
        set_subject(cid)
        return customers.rectify(hub(), db(), cid, changes, actor=current_principal().actor)

    @require("customers:write")
    @blp.response(200, CustomerSchema)
    def delete(self, customer_id: str) -> dict[str, Any]:
        """Erase (Art. 17): an erasure request, verified at once on this API key's authority.

        As `POST /api/v1/requests` with `identity_verified` does: every consent is
        withdrawn, data under a legal retention duty is kept under its own key, the
        customer's data key is destroyed (crypto-shredding), and every system with a
        webhook is told (`customer.erased`). Returns the tombstone; repeating it is harmless.
        """
        return customers.erase(hub(), db(), canonical_id(customer_id),
                               actor=current_principal().actor)


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
    next_cursor = next_cursor_field()


@blp.route("/<string:customer_id>/statements")
class Statements(MethodView):
    @require("customers:read")
    @read_only_request
    @blp.arguments(PAGE, location="query")
    @blp.response(200, StatementListSchema)
    def get(self, page: dict[str, Any], customer_id: str) -> dict[str, Any]:
        """Supplementary statements attached to the customer, oldest first (audited)."""
        return page_of(customers.statements(hub(), db(), canonical_id(customer_id),
                                            actor=current_principal().actor), page, key="id")

    @require("customers:write")
    @idempotent
    @blp.arguments(StatementInSchema)
    @blp.response(201, StatementSchema)
    def post(self, body: dict[str, Any], customer_id: str) -> dict[str, Any]:
        """Attach a supplementary statement (Art. 16: completing incomplete data "by means
        of providing a supplementary statement"). It is shown in the access export; 409 for
        an erased customer."""
        cid = canonical_id(customer_id)
        set_subject(cid)
        return customers.add_statement(hub(), db(), cid, body["text"], concerns=body["concerns"],
                                       actor=current_principal().actor)
