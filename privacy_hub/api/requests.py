"""Data subject requests (API.md "Data subject requests")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import marshmallow as ma
from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate

from dsar.workflow import RejectionGround, RequestStatus, RequestType
from privacy_hub.api.auth import authenticate, current_principal, require
from privacy_hub.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from privacy_hub.api.idempotency import idempotent
from privacy_hub.api.pagination import PageArgs, encode_cursor, next_cursor_field, read_cursor
from privacy_hub.api.problems import Problem
from privacy_hub.schemas import CustomerPatchSchema, Strict, UtcDateTime
from privacy_hub.usecases import requests
from privacy_hub.web.context import db, hot_path, hub, limiter

blp = Blueprint("requests", __name__, url_prefix="/api/v1/requests",
                description="Data subject requests: access, portability, erasure, "
                "rectification, restriction, objection.")


# Intake limits (no flooding, no enumeration by volume): per subject and per client address.
PER_EMAIL_PER_HOUR = 5
PER_ADDRESS_PER_HOUR = 300



def _limit(body: dict[str, Any], *, trusted: bool) -> None:
    if trusted:  # a DPO logs requests from letters and calls: no intake limit applies
        return
    who = body.get("email") or str(body.get("customer_id"))
    for key, limit in ((f"subject|{who.strip().lower()}", PER_EMAIL_PER_HOUR),
                       (f"address|{request.remote_addr}", PER_ADDRESS_PER_HOUR)):
        wait = limiter().hit(key, limit=limit, window=3600)
        if wait is not None:
            raise Problem(429, "Too many requests for this subject or from this address; "
                          "try again later.", headers={"Retry-After": str(int(wait) + 1)})


class DetailsSchema(Strict):
    changes = ma.fields.Nested(CustomerPatchSchema, metadata={
        "description": "rectification: the customer fields to correct"})
    ground = ma.fields.String(validate=validate.OneOf(
        ["accuracy_contested", "unlawful_processing", "legal_claims", "objection_pending"]),
        metadata={"description": "restriction: the Art. 18(1) ground (required)"})
    purposes = ma.fields.List(ma.fields.String(validate=validate.Length(min=1, max=100)),
                              validate=validate.Length(min=1, max=50), metadata={
                                  "description": "objection: omitted means every direct-marketing purpose"})


class RequestCreate(Strict):
    type = ma.fields.String(required=True, validate=validate.OneOf([str(t) for t in RequestType]))
    email = ma.fields.Email(validate=validate.Length(max=254))
    customer_id = ma.fields.UUID()
    identity_verified = ma.fields.Boolean(load_default=False, metadata={
        "description": "Only with requests:manage, together with verification_method"})
    verification_method = ma.fields.String(validate=validate.Length(min=1, max=40))
    details = ma.fields.Nested(DetailsSchema, load_default=dict)
    channel = ma.fields.String(load_default="api", validate=validate.OneOf(
        ["api", "portal", "email", "letter", "phone", "console"]))
    received_at = UtcDateTime(metadata={
        "description": "The real receipt date of a request logged by a DPO (requests:manage)"})
    language = ma.fields.String(validate=validate.Regexp(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*$"),
                                metadata={"description": (
                                    "The language the subject made the request in (a BCP 47 "
                                    "tag, e.g. `de`). The acknowledgement mail (id, type, "
                                    "received and due dates, R-DSAR-02) is written in the "
                                    "customer's own language, else in this one, else in "
                                    "English"), "example": "de"})

    @ma.validates_schema
    def _who(self, data: dict[str, Any], **_: Any) -> None:
        if ("email" in data) == ("customer_id" in data):
            raise ma.ValidationError("give exactly one of email and customer_id")


class Created(ma.Schema):
    id = ma.fields.String()
    type = ma.fields.String()
    status = ma.fields.String()
    received_at = ma.fields.String()
    due_at = ma.fields.String()
    extended = ma.fields.Boolean()


class SystemStatus(ma.Schema):
    system = ma.fields.String()
    status = ma.fields.String(metadata={"enum": ["pending", "done", "failed"]})
    updated_at = ma.fields.String()


class RejectionSchema(ma.Schema):
    ground = ma.fields.String(metadata={"enum": [str(g) for g in RejectionGround],
                                        "description": "Why the request was refused"})
    reason = ma.fields.String(metadata={"description": "The justification the subject is told"})
    rejected_at = ma.fields.String()


class RequestSchema(Created):
    customer_id = ma.fields.String(allow_none=True)
    channel = ma.fields.String()
    overdue = ma.fields.Boolean()
    extension_months = ma.fields.Integer()
    verified_at = ma.fields.String(allow_none=True)
    verification_method = ma.fields.String(allow_none=True)
    details = ma.fields.Dict()
    outcome = ma.fields.Raw(allow_none=True)
    rejection_reason = ma.fields.String(allow_none=True)
    rejection = ma.fields.Nested(RejectionSchema, allow_none=True, metadata={
        "description": "A rejected request's ground, justification and time (Art. 12(4))"})
    completed_at = ma.fields.String(allow_none=True)
    systems = ma.fields.List(ma.fields.Nested(SystemStatus))
    history = ma.fields.List(ma.fields.Dict())


class RequestPage(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(RequestSchema))
    next_cursor = next_cursor_field()


class ListQuery(PageArgs):
    status = ma.fields.String(load_default=None,
                              validate=validate.OneOf([str(s) for s in RequestStatus]))
    type = ma.fields.String(load_default=None, validate=validate.OneOf([str(t) for t in RequestType]))
    overdue = ma.fields.Boolean(load_default=None)


class VerifyBody(Strict):
    token = ma.fields.String(validate=validate.Length(min=10, max=200),
                             metadata={"description": "From the emailed link (no API key needed)"})
    method = ma.fields.String(validate=validate.Length(min=1, max=40), metadata={
        "description": "A DPO verified the identity another way (requests:manage)"})

    @ma.validates_schema
    def _one(self, data: dict[str, Any], **_: Any) -> None:
        if ("token" in data) == ("method" in data):
            raise ma.ValidationError("give exactly one of token and method")


class ExtendBody(Strict):
    months = ma.fields.Integer(required=True, validate=validate.OneOf([1, 2]))
    reason = ma.fields.String(required=True, validate=validate.Length(min=1, max=2000))


class RejectBody(Strict):
    ground = ma.fields.String(
        load_default=str(RejectionGround.OTHER),
        validate=validate.OneOf([str(g) for g in RejectionGround]),
        metadata={"description": "Why the request is refused: manifestly unfounded or "
                  "excessive (Art. 12(5)), identity not confirmed (Art. 12(6)), nobody "
                  "identified (Art. 11(2)), or another ground the reason explains "
                  "(default `other`)"})
    reason = ma.fields.String(required=True, validate=validate.Length(min=1, max=2000),
                              metadata={"description": "The justification the subject is "
                                        "told (required, not empty)"})


class CancelBody(Strict):
    note = ma.fields.String(validate=validate.Length(max=2000))


@blp.route("")
class RequestCollection(MethodView):
    @require("requests:write")
    @idempotent
    @blp.arguments(RequestCreate)
    @blp.response(201, Created)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Receive a request. An unknown email is accepted the same way and never completes.

        The subject is sent an acknowledgement with the request's id, type, received and
        due dates (R-DSAR-02): with the verification link when it must still be verified."""
        principal = current_principal()
        manage = "requests:manage" in principal.scopes
        _limit(body, trusted=manage)
        if body["identity_verified"] or body.get("received_at"):
            if not manage:
                raise Problem(403, "Only a key with `requests:manage` may mark a request verified "
                              "or give its receipt date.", type_="missing-scope",
                              required_scope="requests:manage")
            if body["identity_verified"] and not body.get("verification_method"):
                raise Problem(422, "Say how the identity was verified.",
                              errors={"verification_method": ["required with identity_verified"]})
        asked = {"type": body["type"], "actor": principal.actor, "email": body.get("email"),
                 "customer_id": str(body["customer_id"]) if body.get("customer_id") else None,
                 "details": body["details"], "channel": body["channel"],
                 "received_at": body.get("received_at"), "language": body.get("language")}
        hot = hot_path()
        # A request still to be verified is a few rows in one short group-committed
        # transaction, unless it carries an Idempotency-Key (its stored response commits
        # with the change, in the session) or needs more (see submit_grouped).
        if (hot is not None and not body["identity_verified"]
                and request.headers.get(IDEMPOTENCY_HEADER) is None):
            with hot.writer.upcoming():
                created = requests.submit_grouped(hub(), hot, **asked)
            if created is not None:
                return created
        return requests.submit(hub(), db(), **asked, verified=body["identity_verified"],
                               verification_method=body.get("verification_method"))

    @require("requests:read")
    @blp.arguments(ListQuery, location="query")
    @blp.response(200, RequestPage)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """Requests by deadline, soonest first; filter by status, type and `overdue=true`."""
        position = read_cursor(query["cursor"], due=datetime, id=str)
        after = (position["due"], position["id"]) if position else None
        items, last = requests.page(db(), status=query["status"], type=query["type"],
                                    overdue=query["overdue"], after=after, limit=query["limit"])
        nxt = encode_cursor({"due": last[0].isoformat(), "id": last[1]}) if last else None
        return {"items": items, "next_cursor": nxt}


@blp.route("/<string:request_id>")
class RequestItem(MethodView):
    @require("requests:read")
    @blp.response(200, RequestSchema)
    def get(self, request_id: str) -> dict[str, Any]:
        """One request, with each downstream system's status and the full history."""
        return requests.get(hub(), db(), request_id)


@blp.route("/<string:request_id>/verify")
class RequestVerify(MethodView):
    @blp.arguments(VerifyBody)
    @blp.response(200, RequestSchema)
    def post(self, body: dict[str, Any], request_id: str) -> dict[str, Any]:
        """Verify: with the token from the emailed link, or (requests:manage) with the
        method a DPO used."""
        if "token" in body:
            return requests.verify_with_token(hub(), db(), request_id, body["token"])
        principal = authenticate()
        if "requests:manage" not in principal.scopes:
            raise Problem(403, "This API key lacks the `requests:manage` scope.",
                          type_="missing-scope", required_scope="requests:manage")
        return requests.verify(hub(), db(), request_id, method=body["method"],
                               actor=principal.actor)


@blp.route("/<string:request_id>/extend")
class RequestExtend(MethodView):
    @require("requests:manage")
    @blp.arguments(ExtendBody)
    @blp.response(200, RequestSchema)
    def post(self, body: dict[str, Any], request_id: str) -> dict[str, Any]:
        """Extend by 1 or 2 months (at most 2 in total), before the first deadline; the
        subject is told why."""
        return requests.extend(hub(), db(), request_id, months=body["months"],
                               reason=body["reason"], actor=current_principal().actor)


@blp.route("/<string:request_id>/reject")
class RequestReject(MethodView):
    @require("requests:manage")
    @blp.arguments(RejectBody)
    @blp.response(200, RequestSchema)
    def post(self, body: dict[str, Any], request_id: str) -> dict[str, Any]:
        """Reject on a ground with a justification (Art. 12(4)); the subject is told both,
        with their right to complain to a supervisory authority and to a judicial remedy.
        Requests are free: the hub refuses an unfounded or excessive request, it never
        charges a fee for one."""
        return requests.reject(hub(), db(), request_id, ground=body["ground"],
                               reason=body["reason"], actor=current_principal().actor)


@blp.route("/<string:request_id>/cancel")
class RequestCancel(MethodView):
    @require("requests:manage")
    @blp.arguments(CancelBody)
    @blp.response(200, RequestSchema)
    def post(self, body: dict[str, Any], request_id: str) -> dict[str, Any]:
        """Cancel a request that is not completed."""
        return requests.cancel(hub(), db(), request_id, actor=current_principal().actor,
                               note=body.get("note"))


class ReportBody(Strict):
    status = ma.fields.String(required=True, validate=validate.OneOf(["done", "failed"]))
    data = ma.fields.Dict(metadata={"description": (
        "access/portability: what the system holds about the subject, merged into the "
        "export. " + requests.THIRD_PARTY_MARKING)})


class CloseBody(Strict):
    note = ma.fields.String(required=True, validate=validate.Length(min=1, max=2000))


@blp.route("/<string:request_id>/systems/<string:system>")
class RequestSystemReport(MethodView):
    @require(None)
    @blp.arguments(ReportBody)
    @blp.response(200, RequestSchema)
    def post(self, body: dict[str, Any], request_id: str, system: str) -> dict[str, Any]:
        """A downstream system reports its part (its own key, or `requests:manage`)."""
        principal = current_principal()
        if principal.name != system and "requests:manage" not in principal.scopes:
            raise Problem(403, "A system reports only for itself (or a key with "
                          "`requests:manage`).", type_="forbidden")
        return requests.report(hub(), db(), request_id, system=system, status=body["status"],
                               data=body.get("data"), actor=principal.actor)


@blp.route("/<string:request_id>/complete")
class RequestClose(MethodView):
    @require("requests:manage")
    @blp.arguments(CloseBody)
    @blp.response(200, RequestSchema)
    def post(self, body: dict[str, Any], request_id: str) -> dict[str, Any]:
        """A DPO completes the request with a note, although not every system reported done."""
        return requests.close(hub(), db(), request_id, note=body["note"],
                              actor=current_principal().actor)


@blp.route("/<string:request_id>/export")
class RequestExport(MethodView):
    @require("requests:read")
    @blp.doc(responses={"200": {"description": "The ZIP: data.json, CSVs, information.json",
                                "content": {"application/zip": {"schema": {
                                    "type": "string", "format": "binary"}}}}})
    def get(self, request_id: str) -> Response:
        """The answer to a completed access or portability request (audited)."""
        archive = requests.export(hub(), db(), request_id, actor=current_principal().actor)
        return Response(archive, mimetype="application/zip", headers={
            "Content-Disposition": f'attachment; filename="privacy-{request_id}.zip"'})
