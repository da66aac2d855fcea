"""Registered systems (downstream CRM services) and their API keys."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from privacy_hub.api.auth import current_principal, require
from privacy_hub.api.idempotency import idempotent
from privacy_hub.api.pagination import PageArgs, decode_cursor, encode_cursor
from privacy_hub.api.problems import Problem
from privacy_hub.models import System
from privacy_hub.schemas import (
    SystemCreatedSchema,
    SystemCreateSchema,
    SystemPageSchema,
    SystemSchema,
)
from privacy_hub.systems import SystemRegistry, validate_webhook_url
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
        if body.get("webhook_url"):
            try:
                msg = validate_webhook_url(body["webhook_url"])
            except ValueError:  # urlsplit: e.g. "http://[::1" (unclosed IPv6 literal)
                msg = "not a valid URL"
            if msg:
                raise Problem(422, "The webhook URL is not acceptable.",
                              errors={"webhook_url": [msg]})
        system, api_key, secret = hub().systems.create(
            db(), name=body["name"], scopes=body["scopes"], purposes=body.get("purposes"),
            webhook_url=body.get("webhook_url"), actor=current_principal().actor)
        return {**SystemRegistry.public(system), "api_key": api_key, "webhook_secret": secret}

    @require("systems:manage")
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, SystemPageSchema)
    def get(self, page: dict[str, Any]) -> dict[str, Any]:
        """Registered systems, by name."""
        position = decode_cursor(page["cursor"], required_keys=("after",))
        stmt = select(System).order_by(System.name).limit(page["limit"] + 1)
        if position:
            stmt = stmt.where(System.name > str(position["after"]))
        rows = db().scalars(stmt).all()
        more = len(rows) > page["limit"]
        rows = rows[: page["limit"]]
        return {"items": [SystemRegistry.public(s) for s in rows],
                "next_cursor": encode_cursor({"after": rows[-1].name}) if more else None}


@blp.route("/<string:name>")
class SystemItem(MethodView):
    @require("systems:manage")
    @blp.response(200, SystemSchema)
    def get(self, name: str) -> dict[str, Any]:
        """One system by name."""
        system = db().scalar(select(System).where(System.name == name))
        if system is None:
            raise Problem(404, "No system with this name.")
        return SystemRegistry.public(system)
