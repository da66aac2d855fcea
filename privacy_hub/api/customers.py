"""Customers (data subjects): create-or-update, lookup, read, rectify, erase."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from privacy_hub.api.auth import current_principal, require
from privacy_hub.api.idempotency import idempotent, set_subject
from privacy_hub.api.problems import Problem
from privacy_hub.api.schemas import (
    CustomerCreateSchema,
    CustomerPatchSchema,
    CustomerSchema,
    LookupResultSchema,
    LookupSchema,
)
from privacy_hub.web import db, hub, read_only_request

# Instances, not classes: given a class, webargs builds a new schema on every request.
_CREATE, _LOOKUP, _PATCH = CustomerCreateSchema(), LookupSchema(), CustomerPatchSchema()

blp = Blueprint("customers", __name__, url_prefix="/api/v1/customers",
                description="Customers (data subjects) in the encrypted vault.")


def customer_id_or_404(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise Problem(404, "No customer with this id.") from None


@blp.route("")
class Customers(MethodView):
    @require("customers:write")
    @idempotent
    @blp.arguments(_CREATE)
    @blp.response(201, CustomerSchema, description="Created")
    @blp.alt_response(200, schema=CustomerSchema, description="Updated an existing customer")
    def post(self, fields: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Create a customer, or update the one with this external_id or else email."""
        profile, created = hub().vault.upsert(db(), fields, actor=current_principal().actor)
        set_subject(profile["id"])
        return profile, 201 if created else 200


@blp.route("/lookup")
class Lookup(MethodView):
    @require("customers:read")
    @read_only_request  # no write lock while reading; the audit entry is group-committed
    @blp.arguments(_LOOKUP)
    @blp.response(200, LookupResultSchema)
    def post(self, query: dict[str, Any]) -> dict[str, Any]:
        """Find customers by exact email, phone or external id; returns ids only."""
        ids = hub().vault.lookup(db(), actor=current_principal().actor, **query)
        return {"items": [{"id": i} for i in ids]}


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
        """Rectify fields (Art. 16); `null` removes an optional field."""
        cid = customer_id_or_404(customer_id)
        set_subject(cid)
        return hub().vault.rectify(db(), cid, changes, actor=current_principal().actor)

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
        return hub().vault.profile(session, hub().vault.get_row(session, cid))
