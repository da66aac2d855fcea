"""The retention table (R-RET-01, Art. 5(1)(e)): every store with its period."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from privacy_hub.api.auth import require
from privacy_hub.api.pagination import PAGE, next_cursor_field, page_of
from privacy_hub.retention.policies import ACTIONS
from privacy_hub.usecases import retention
from privacy_hub.web.context import db, hub, read_only_request

blp = Blueprint("retention", __name__, url_prefix="/api/v1",
                description="Storage limitation (Art. 5(1)(e)): how long each store keeps "
                            "what it holds, and what happens then.")


class RetentionPolicySchema(ma.Schema):
    id = ma.fields.String(metadata={
        "description": "The store, or `store:purpose` for a per-purpose period"})
    store = ma.fields.String(metadata={"description": "e.g. `customer_events`, `audit_log`"})
    tables = ma.fields.List(ma.fields.String(), metadata={
        "description": "The database tables the rule covers"})
    purpose = ma.fields.String(allow_none=True, metadata={
        "description": "For a per-purpose period: the purpose's key (its `retention_days`)"})
    days = ma.fields.Integer(allow_none=True, metadata={
        "description": "The period in days; null for a store kept without a period (see "
                       "`reason`)"})
    period = ma.fields.String(allow_none=True, metadata={
        "description": "The period as an ISO 8601 duration, e.g. `P1095D`"})
    counted_from = ma.fields.String(metadata={"description": "What the period counts from"})
    action = ma.fields.String(metadata={
        "description": "What happens when it ends: `delete`, `crypto_shred` (the key is "
                       "destroyed), `anonymise`, or `keep` (no period, for the reason given)",
        "enum": list(ACTIONS)})
    reason = ma.fields.String(metadata={
        "description": "Why this period: the legal ground, or the recorded justification"})
    enforced_by = ma.fields.String(metadata={
        "description": "What enforces it, e.g. `retention pass` (daily, and "
                       "`privacy-hub retention run`)"})
    config_variable = ma.fields.String(allow_none=True, metadata={
        "description": "The environment variable that sets the period, if one does"})
    configured_by = ma.fields.String(allow_none=True, metadata={
        "description": "Where the period is set: the variable, or the purpose registry"})


class RetentionPolicyList(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(RetentionPolicySchema))
    next_cursor = next_cursor_field()


@blp.route("/retention-policies")
class RetentionPolicies(MethodView):
    @read_only_request
    @require("audit:read")
    @blp.arguments(PAGE, location="query")
    @blp.response(200, RetentionPolicyList)
    def get(self, page: dict[str, Any]) -> dict[str, Any]:
        """Every store with its retention period, what happens at its end, and why
        (R-RET-01): one item per store, and per purpose where the period is the purpose's
        `retention_days`. The records of processing quote the same table."""
        return page_of(retention.retention_policies(hub(), db()), page, key="id")
