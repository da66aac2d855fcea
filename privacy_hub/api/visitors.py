"""Shop visitors: linking a cookie banner answer to the customer who signed in."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from privacy_hub.api.auth import current_principal, require
from privacy_hub.api.consents import RecordedList
from privacy_hub.api.idempotency import idempotent, set_subject
from privacy_hub.schemas import Strict
from privacy_hub.usecases import banner
from privacy_hub.usecases.customers import canonical_id
from privacy_hub.web.context import db, hub

blp = Blueprint("visitors", __name__, url_prefix="/api/v1/visitors",
                description="Anonymous shop visitors and their cookie banner answers "
                            "(`/consent/banner.js`).")


class LinkSchema(Strict):
    customer_id = ma.fields.String(required=True, metadata={
        "format": "uuid", "description": "the customer the visitor signed in as"})


_LINK = LinkSchema()


@blp.route("/<string:visitor_id>/link")
class VisitorLink(MethodView):
    @require("consents:write")
    @idempotent
    @blp.arguments(_LINK)
    @blp.response(201, RecordedList)
    def post(self, body: dict[str, Any], visitor_id: str) -> dict[str, Any]:
        """The visitor signed in: their current banner answer (at most 13 months old)
        becomes the customer's consent decisions, one per purpose of each category,
        `source: cookie_banner`, with the answer as evidence. Call it from the shop's
        backend when a visitor signs in; the visitor id is in the `hub_consent` cookie the
        banner sets. `items` is empty when the visitor has no current answer."""
        cid = canonical_id(body["customer_id"])
        set_subject(cid)
        return {"items": banner.link_visitor(hub(), db(), visitor_id, cid,
                                             actor=current_principal().actor)}
