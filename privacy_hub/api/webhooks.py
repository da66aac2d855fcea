"""Webhook deliveries: what was sent to which system, what failed, and sending it again."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from privacy_hub.api.auth import current_principal, require
from privacy_hub.api.idempotency import idempotent
from privacy_hub.api.pagination import (
    PageArgs,
    bad_cursor,
    encode_cursor,
    next_cursor_field,
    read_cursor,
)
from privacy_hub.jobs import outbox
from privacy_hub.systems import NAME_RE
from privacy_hub.usecases import systems
from privacy_hub.web.context import db

blp = Blueprint("webhooks", __name__, url_prefix="/api/v1/webhooks",
                description="Webhook deliveries to downstream systems: status, errors, retries.")

_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class DeliveryQuery(PageArgs):
    status = ma.fields.String(load_default=None, validate=ma.validate.OneOf(outbox.STATUSES),
                              metadata={"description": "Only deliveries in this state."})
    system = ma.fields.String(load_default=None, validate=ma.validate.Regexp(NAME_RE),
                              metadata={"description": "Only deliveries to this system (name)."})


class DeliverySchema(ma.Schema):
    id = ma.fields.String(metadata={"description": "The delivery (one event to one system)."})
    event_id = ma.fields.String(metadata={
        "description": "The `id` in the webhook body and `Privacy-Hub-Event-Id`: the same "
                       "for every system and every retry."})
    type = ma.fields.String(metadata={"example": "consent.changed"})
    system = ma.fields.String(allow_none=True, metadata={"description": "Receiving system."})
    status = ma.fields.String(metadata={"enum": list(outbox.STATUSES)})
    attempts = ma.fields.Integer()
    last_error = ma.fields.String(allow_none=True, metadata={
        "description": "The last failure, e.g. `HTTP 500`, `timeout`, `connection refused`."})
    next_attempt_at = ma.fields.String(allow_none=True, metadata={"format": "date-time"})
    delivered_at = ma.fields.String(allow_none=True, metadata={"format": "date-time"})
    created_at = ma.fields.String(metadata={"format": "date-time"})


class DeliveryPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(DeliverySchema))
    next_cursor = next_cursor_field()


def _position(cursor: str | None) -> tuple[datetime, str] | None:
    position = read_cursor(cursor, at=datetime, id=str)
    if position is None:
        return None
    if not _ID_RE.match(position["id"]):
        raise bad_cursor()
    return position["at"], position["id"]


@blp.route("/deliveries")
class Deliveries(MethodView):
    @require("systems:manage")
    @blp.arguments(DeliveryQuery, location="query")
    @blp.response(200, DeliveryPageSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """Deliveries, newest first, optionally only one status or one system."""
        items, last = systems.deliveries(db(), status=query["status"], system=query["system"],
                                         before=_position(query["cursor"]), limit=query["limit"])
        return {"items": items,
                "next_cursor": encode_cursor({"at": last[0].isoformat(), "id": last[1]})
                if last is not None else None}


@blp.route("/deliveries/<string:delivery_id>")
class DeliveryItem(MethodView):
    @require("systems:manage")
    @blp.response(200, DeliverySchema)
    def get(self, delivery_id: str) -> dict[str, Any]:
        """One delivery."""
        return systems.delivery(db(), delivery_id)


@blp.route("/deliveries/<string:delivery_id>/retry")
class DeliveryRetry(MethodView):
    @require("systems:manage")
    @idempotent
    @blp.response(200, DeliverySchema)
    @blp.alt_response(409, description="The delivery is not dead (pending or delivered).")
    # The body is empty, but a reused Idempotency-Key is refused with 422.
    @blp.alt_response(422, "UNPROCESSABLE_ENTITY")
    def post(self, delivery_id: str) -> dict[str, Any]:
        """Send a dead delivery again now, with a fresh set of attempts (audited)."""
        return systems.retry_delivery(db(), delivery_id, actor=current_principal().actor)
