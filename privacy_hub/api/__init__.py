"""The REST API under /api/v1, its OpenAPI document and its docs page."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from flask_smorest import Api
from werkzeug.exceptions import HTTPException

from privacy_hub.api import (
    audit_log,
    consents,
    customers,
    evidence,
    gate,
    processing,
    purposes,
    requests,
    retention,
    ropa,
    systems,
    tcf,
    visitors,
    webhooks,
)
from privacy_hub.api.input_guard import reject_unstorable_text
from privacy_hub.api.problems import from_domain_error, from_http_exception
from privacy_hub.web.problems import problem_response

log = logging.getLogger(__name__)

API_VERSION = "1.0.0"
DESCRIPTION = """\
The Privacy Hub API for the shop and CRM services.

Authenticate with `Authorization: Bearer <api key>`. Errors are RFC 9457 problem
documents (`application/problem+json`) with per-field `errors`. Unknown fields in a
body are rejected. Lists are paginated with `?limit=` and an opaque `?cursor=`.
Writes accept an `Idempotency-Key` header.
"""

_SECURITY_SCHEMES = {"bearerAuth": {"type": "http", "scheme": "bearer",
                                    "description": "An API key from `privacy-hub systems create`."}}
_PROBLEM = {
    "type": "object",
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"},
        "status": {"type": "integer"}, "detail": {"type": "string"},
        "errors": {"type": "object", "additionalProperties": {
            "type": "array", "items": {"type": "string"}}},
    },
    "required": ["type", "title", "status", "detail"],
}


def _problem_ref(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


class HubApi(Api):  # type: ignore[misc]
    """flask-smorest with problem documents instead of its own error format."""

    def handle_http_exception(self, error: HTTPException) -> Response:
        return from_http_exception(error)


def _document_problems(api: Api) -> None:
    """Every error is a problem document: say so in the spec, and document the 404 of
    every path with an id and the 409 of writes that can conflict."""
    responses = api.spec.components.responses
    for name, description in (("DEFAULT_ERROR", "An error (problem document)"),
                              ("UNPROCESSABLE_ENTITY", "Invalid fields, each named in `errors`")):
        responses[name] = _problem_ref(description)
    responses.setdefault("NotFound", _problem_ref("No such resource"))
    responses.setdefault("Conflict", _problem_ref("The request conflicts with the current state"))
    api.spec.components.schemas.pop("Error", None)
    for path, item in api.spec._paths.items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            codes = op.setdefault("responses", {})
            if "{" in path:
                codes.setdefault("404", {"$ref": "#/components/responses/NotFound"})
            if method in ("post", "patch", "delete"):
                codes.setdefault("409", {"$ref": "#/components/responses/Conflict"})


def init_app(app: Flask) -> Api:
    app.config.update(
        API_TITLE="Privacy Hub",
        API_VERSION=API_VERSION,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
    )
    api = HubApi(app, spec_kwargs={"info": {"description": DESCRIPTION}})
    spec = api.spec
    spec.components.security_scheme("bearerAuth", _SECURITY_SCHEMES["bearerAuth"])
    spec.components.schema("Problem", _PROBLEM)
    spec.components.response("Unauthenticated", _problem_ref("Missing or invalid API key"))
    spec.components.response("Forbidden", _problem_ref("The API key lacks the scope or purpose"))
    spec.components.response("IdempotencyKeyReused", _problem_ref(
        "Invalid fields, or the Idempotency-Key was used before with another request"))
    spec.components.parameter("IdempotencyKey", "header", {
        "name": "Idempotency-Key", "required": False,
        "description": "Retry-safe writes: a retry with the same key and body returns the first response.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
    })
    for module in (customers, consents, tcf, gate, purposes, requests, processing, systems,
                   audit_log, evidence, webhooks, ropa, retention, visitors):
        api.register_blueprint(module.blp)
    _document_problems(api)
    app.register_blueprint(ropa.well_known)

    @app.errorhandler(Exception)
    def _domain_error(exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            return from_http_exception(exc)
        resp = from_domain_error(exc)
        if resp is not None:
            return resp
        log.error("unhandled error in %s %s", request.method, request.url_rule, exc_info=exc)
        return problem_response(500, "The hub failed to handle this request; it was logged. "
                                "Nothing was saved.")

    @app.before_request
    def _json_only() -> Response | None:
        if (request.path.startswith("/api/") and request.method in ("POST", "PUT", "PATCH")
                and request.content_length != 0 and request.mimetype != "application/json"
                and (request.content_length or request.headers.get("Transfer-Encoding"))):
            return problem_response(415, "Send the request body as JSON with "
                                    "`Content-Type: application/json`.")
        return None

    # After _json_only: NUL and lone surrogates would otherwise be 500s in the database.
    app.before_request(reject_unstorable_text)

    @app.get("/api/v1/ping")
    def ping() -> Response:
        """A trivial JSON endpoint (no auth, no database): the benchmarks' baseline."""
        return jsonify(ok=True)

    @app.get("/api/docs")
    def docs() -> str:
        return render_template("api_docs.html", spec=api.spec.to_dict())

    return api
