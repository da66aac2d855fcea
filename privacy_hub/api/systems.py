"""Registered systems (downstream CRM services) and their API keys."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from privacy_hub.api.auth import current_principal, require
from privacy_hub.api.idempotency import idempotent
from privacy_hub.api.pagination import PAGE, encode_cursor, read_cursor
from privacy_hub.schemas import (
    SystemCreatedSchema,
    SystemCreateSchema,
    SystemPageSchema,
    SystemSchema,
)
from privacy_hub.usecases import systems
from privacy_hub.web.context import db, hub

blp = Blueprint("systems", __name__, url_prefix="/api/v1/systems",
                description="Downstream systems, their scopes, purposes and webhooks.")


@blp.route("")
class Systems(MethodView):
    @require("systems:manage")
    @idempotent
    @blp.arguments(SystemCreateSchema)
    @blp.response(201, SystemCreatedSchema)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Register a system; its API key and webhook secret are shown only in this answer."""
        return systems.register(hub(), db(), name=body["name"], scopes=body["scopes"],
                                purposes=body.get("purposes"),
                                webhook_url=body.get("webhook_url"),
                                actor=current_principal().actor)

    @require("systems:manage")
    @blp.arguments(PAGE, location="query")
    @blp.response(200, SystemPageSchema)
    def get(self, page: dict[str, Any]) -> dict[str, Any]:
        """Registered systems, by name."""
        position = read_cursor(page["cursor"], after=str)
        items, last = systems.page(db(), after=position["after"] if position else None,
                                   limit=page["limit"])
        return {"items": items,
                "next_cursor": encode_cursor({"after": last}) if last is not None else None}


@blp.route("/<string:name>")
class SystemItem(MethodView):
    @require("systems:manage")
    @blp.response(200, SystemSchema)
    def get(self, name: str) -> dict[str, Any]:
        """One system by name."""
        return systems.get(db(), name)
