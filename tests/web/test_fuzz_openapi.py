"""Generated good and bad requests against every operation of the served OpenAPI document.

schemathesis reads ``/api/openapi.json`` from the app under test and drives each
operation in-process (WSGI) with schema-conforming (positive) and schema-violating
(negative) data. Whatever it sends, the contract of shared/API.md "Conventions" must
hold: a 500 on any input is a bug, every 4xx is an RFC 9457 problem document, every
answer is a status code the document names for the operation or one the conventions
give every operation, and 2xx bodies match their documented schema.

(schemathesis' own pytest integration, ``from_fixture(...).parametrize()``, does not run
under pytest 9.2, so each operation is driven through ``APIOperation.as_strategy`` with
Hypothesis and reported as a subtest.)

The hand-written cases below pin the conventions' status codes one by one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from typing import Any

import hypothesis
import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
)

import audit
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from privacy_hub.systems import SCOPES
from tests.web.conftest import new_key

MAX_EXAMPLES = 40
PROBLEM_JSON = "application/problem+json"
#: Status codes the conventions give every operation, documented there or not:
#: malformed JSON, unknown id, wrong method, state conflict, too large, media type, rate limit.
CONVENTION_STATUSES = {400, 404, 405, 409, 413, 415, 429}
#: Phone numbers the hub accepts, so that "good" generated customers are really good.
PHONES = ["+4915112345678", "+33612345678", "+393331234567", "+14155552671"]
FUZZ = hypothesis.settings(
    max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)


@pytest.fixture
def db_backend() -> str:
    """Generated traffic exercises the HTTP layer; SQLite keeps it fast."""
    return "sqlite"


@pytest.fixture
def seeded_ids(hub: Hub) -> list[str]:
    """A few real customers, so that generated paths sometimes name an existing one."""
    ids = []
    with transaction(hub.sessions) as session:
        for i in range(3):
            profile, _ = hub.vault.upsert(
                session, {"email": f"fuzz-seed-{i}@example.org", "first_name": "Seed"},
                actor=audit.Actor("cli", "tests"))
            ids.append(profile["id"])
    return ids


@pytest.fixture
def api_schema(app: Flask) -> Any:
    """The OpenAPI document exactly as the app serves it."""
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    # The key is sent by the test; generated Authorization values would only ever be 401s,
    # and those are pinned for every operation by test_every_operation_requires_a_key.
    schema.config.generation.update(with_security_parameters=False, deterministic=True)
    return schema


def _operations(api_schema: Any) -> list[Any]:
    operations = []
    for result in api_schema.get_all_operations():
        operations.append(result.ok())  # an Err here is a broken document: let it raise
    assert operations, "the served OpenAPI document has no operations"
    return operations


def _plausible(drawn: tuple[schemathesis.Case, str, str, bool]) -> schemathesis.Case:
    """Make half of the positive bodies carry a real email and phone.

    The document types both as plain strings, so schema-only generation almost never
    produces an address the hub accepts, and would never get past validation.
    """
    case, email, phone, apply = drawn
    if apply and isinstance(case.body, dict):
        if isinstance(case.body.get("email"), str):
            case.body["email"] = email
        if isinstance(case.body.get("phone"), str):
            case.body["phone"] = phone
    return case


def _strategy(operation: Any, mode: GenerationMode) -> st.SearchStrategy[schemathesis.Case]:
    cases = operation.as_strategy(generation_mode=mode)
    if mode.is_negative:
        return cases  # type: ignore[no-any-return]
    emails = st.emails().filter(lambda e: len(e) <= 254)
    return st.tuples(cases, emails, st.sampled_from(PHONES), st.booleans()).map(_plausible)


def _aim_at_a_real_customer(case: schemathesis.Case, seeded_ids: list[str]) -> None:
    """Point half of the valid customer ids in paths at existing customers."""
    path = case.path_parameters
    if not path or "customer_id" not in path:
        return
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.PATH):
        return
    digest = hashlib.sha256(str(path["customer_id"]).encode()).digest()
    if digest[0] % 2 == 0:
        path["customer_id"] = seeded_ids[digest[1] % len(seeded_ids)]


def assert_problem(status: int, content_type: str | None, body: bytes) -> dict[str, Any]:
    """An RFC 9457 problem document with the members API.md requires."""
    assert (content_type or "").split(";")[0].strip() == PROBLEM_JSON, (
        f"{status} answered with {content_type!r}, not a problem document")
    doc = json.loads(body)
    for member in ("type", "title", "status", "detail"):
        assert member in doc, f"problem document lacks {member!r}: {doc}"
    assert doc["status"] == status
    assert isinstance(doc["detail"], str) and doc["detail"]
    if "errors" in doc:
        assert isinstance(doc["errors"], dict)
        assert all(isinstance(v, list) for v in doc["errors"].values())
    return doc  # type: ignore[no-any-return]


def _check_answer(case: schemathesis.Case, response: schemathesis.Response) -> None:
    status = response.status_code
    label = case.operation.label
    assert status < 500, f"{label} answered {status}: {response.text[:500]}\n{case!r}"
    documented = {int(c) for c in case.operation.responses.status_codes if c.isdigit()}
    assert status in documented | CONVENTION_STATUSES, (
        f"{label} answered {status}; documented: {sorted(documented)}\n{case!r}")
    if status >= 400:
        assert_problem(status, response.headers.get("content-type", [None])[0], response.content)
    else:
        case.validate_response(
            response, checks=[content_type_conformance, response_schema_conformance])
    if case.meta is not None and case.meta.generation.mode.is_negative:
        case.validate_response(response, checks=[negative_data_rejection])


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=lambda m: m.value)
def test_every_operation_answers_within_the_contract(
        api_schema: Any, auth: dict[str, str], seeded_ids: list[str], mode: GenerationMode,
        subtests: pytest.Subtests) -> None:
    """API.md Conventions: no 5xx on any input; 4xx are problem documents; codes documented."""
    for operation in _operations(api_schema):

        @FUZZ
        @hypothesis.given(case=_strategy(operation, mode))
        def drive(case: schemathesis.Case) -> None:
            _aim_at_a_real_customer(case, seeded_ids)
            _check_answer(case, case.call(headers=auth))

        with subtests.test(operation.label):
            drive()


def _concrete_path(path: str) -> str:
    return path.replace("{customer_id}", str(uuid.uuid4())).replace("{name}", "no-such-system")


def _secured(api_schema: Any) -> list[tuple[Any, list[str]]]:
    out = []
    for operation in _operations(api_schema):
        security = operation.definition.raw.get("security")
        if security == []:
            continue  # explicitly public
        scopes = [s for req in security or [] for s in req.get("bearerAuth", [])]
        out.append((operation, scopes))
    return out


def _send(client: FlaskClient, operation: Any, headers: dict[str, str]) -> Any:
    method = operation.method.lower()
    kwargs: dict[str, Any] = {"headers": headers}
    if method in ("post", "put", "patch"):
        kwargs["json"] = {}
    return getattr(client, method)(_concrete_path(operation.path), **kwargs)


def test_every_operation_requires_a_key(api_schema: Any, client: FlaskClient,
                                        subtests: pytest.Subtests) -> None:
    """Missing or invalid credentials are 401, on every operation the document secures."""
    secured = _secured(api_schema)
    assert secured
    for operation, _ in secured:
        for headers in ({}, {"Authorization": "Bearer phk_0000_nope"},
                        {"Authorization": "Basic dXNlcjpwYXNz"}):
            with subtests.test(operation.label, headers=headers):
                resp = _send(client, operation, headers)
                assert resp.status_code == 401, resp.get_data(as_text=True)
                assert_problem(401, resp.content_type, resp.data)
                assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_every_operation_enforces_its_documented_scope(
        api_schema: Any, hub: Hub, client: FlaskClient, subtests: pytest.Subtests) -> None:
    """Credentials without the scope the document names are 403, whatever the body."""
    for operation, scopes in _secured(api_schema):
        if not scopes:
            continue
        others = [s for s in SCOPES if s not in scopes]
        key = new_key(hub, f"lacks-{uuid.uuid4().hex[:8]}", others)
        with subtests.test(operation.label, scopes=scopes):
            resp = _send(client, operation, {"Authorization": f"Bearer {key}"})
            assert resp.status_code == 403, resp.get_data(as_text=True)
            assert_problem(403, resp.content_type, resp.data)


# -- the conventions, one status code at a time ---------------------------------------


def test_malformed_json_is_400(client: FlaskClient, auth: dict[str, str]) -> None:
    resp = client.post("/api/v1/customers", data=b'{"email": "a@example.org",',
                       headers={**auth, "Content-Type": "application/json"})
    assert resp.status_code == 400
    assert_problem(400, resp.content_type, resp.data)


def test_invalid_utf8_body_is_400(client: FlaskClient, auth: dict[str, str]) -> None:
    resp = client.post("/api/v1/customers", data=b'{"email": "\xff\xfe@example.org"}',
                       headers={**auth, "Content-Type": "application/json"})
    assert resp.status_code == 400
    assert_problem(400, resp.content_type, resp.data)


@pytest.mark.parametrize("body", [[], [{"email": "a@example.org"}], "a@example.org", 42, None],
                         ids=["empty-array", "array", "string", "number", "null"])
def test_a_body_that_is_not_an_object_is_422(client: FlaskClient, auth: dict[str, str],
                                             body: Any) -> None:
    resp = client.post("/api/v1/customers", data=json.dumps(body),
                       headers={**auth, "Content-Type": "application/json"})
    assert resp.status_code == 422, resp.get_data(as_text=True)
    assert_problem(422, resp.content_type, resp.data)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/xml"])
def test_a_body_that_is_not_json_is_415(client: FlaskClient, auth: dict[str, str],
                                        content_type: str) -> None:
    resp = client.post("/api/v1/customers", data=b'{"email": "a@example.org"}',
                       headers={**auth, "Content-Type": content_type})
    assert resp.status_code == 415
    assert_problem(415, resp.content_type, resp.data)


def test_a_body_over_one_mebibyte_is_413(client: FlaskClient, auth: dict[str, str]) -> None:
    body = json.dumps({"email": "a@example.org", "attributes": {"x": "a" * (1024 * 1024)}})
    resp = client.post("/api/v1/customers", data=body,
                       headers={**auth, "Content-Type": "application/json"})
    assert resp.status_code == 413
    assert_problem(413, resp.content_type, resp.data)


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
@pytest.mark.parametrize("customer_id", [str(uuid.uuid4()), "not-a-uuid", "%00", "..%2F"])
def test_an_unknown_customer_is_404(client: FlaskClient, auth: dict[str, str], method: str,
                                    customer_id: str) -> None:
    kwargs: dict[str, Any] = {"headers": auth}
    if method == "patch":
        kwargs["json"] = {"first_name": "Ada"}
    resp = getattr(client, method)(f"/api/v1/customers/{customer_id}", **kwargs)
    assert resp.status_code == 404
    assert_problem(404, resp.content_type, resp.data)


def test_an_unknown_system_is_404(client: FlaskClient, auth: dict[str, str]) -> None:
    resp = client.get("/api/v1/systems/no-such-system", headers=auth)
    assert resp.status_code == 404
    assert_problem(404, resp.content_type, resp.data)


def test_no_key_is_401(client: FlaskClient) -> None:
    resp = client.post("/api/v1/customers", json={"email": "a@example.org"})
    assert resp.status_code == 401
    assert_problem(401, resp.content_type, resp.data)


def test_a_key_without_the_scope_is_403(hub: Hub, client: FlaskClient) -> None:
    key = new_key(hub, "reader", ["customers:read"])
    resp = client.post("/api/v1/customers", json={"email": "a@example.org"},
                       headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 403
    doc = assert_problem(403, resp.content_type, resp.data)
    assert "customers:write" in doc["detail"]


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/v1/customers", {"email": "a@example.org", "favourite_colour": "red"},
     "favourite_colour"),
    ("/api/v1/customers", {"email": "a@example.org", "address": {"planet": "Mars"}},
     "address.planet"),
    ("/api/v1/customers/lookup", {"email": "a@example.org", "ssn": "1"}, "ssn"),
    ("/api/v1/systems", {"name": "crm", "scopes": ["customers:read"], "colour": "red"}, "colour"),
])
def test_an_unknown_field_is_422_naming_it(client: FlaskClient, auth: dict[str, str], path: str,
                                           body: dict[str, Any], field: str) -> None:
    """API.md: unknown fields in a request body are rejected with 422 (no silent drops)."""
    resp = client.post(path, json=body, headers=auth)
    assert resp.status_code == 422, resp.get_data(as_text=True)
    doc = assert_problem(422, resp.content_type, resp.data)
    assert field in doc["errors"], doc


def test_an_unknown_field_in_a_patch_is_422_naming_it(
        client: FlaskClient, auth: dict[str, str], seeded_ids: list[str]) -> None:
    resp = client.patch(f"/api/v1/customers/{seeded_ids[0]}", json={"nickname": "Ada"},
                        headers=auth)
    assert resp.status_code == 422
    assert "nickname" in assert_problem(422, resp.content_type, resp.data)["errors"]


# -- inputs generation does not reach, each once a 500 ------------------------------------


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb", "\udbff"])
@pytest.mark.parametrize("field", ["first_name", "email", "external_id", "attributes"])
def test_unpaired_surrogates_in_json_are_rejected(client: FlaskClient, auth: dict[str, str],
                                                  text: str, field: str) -> None:
    """JSON may escape a lone surrogate (``"\\ud800"``); it is not text and cannot be stored."""
    body: dict[str, Any] = {"email": "a@example.org"}
    if field == "email":
        body["email"] = f"a{text}@example.org"
    elif field == "attributes":
        body["attributes"] = {f"k{text}": text}
    else:
        body[field] = text
    resp = client.post("/api/v1/customers", data=json.dumps(body),  # ensure_ascii: \\ud800
                       headers={**auth, "Content-Type": "application/json"})
    assert resp.status_code in (400, 422), resp.get_data(as_text=True)
    assert_problem(resp.status_code, resp.content_type, resp.data)


def _cursor(position: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


@pytest.mark.parametrize("path", ["/api/v1/audit", "/api/v1/systems"])
@pytest.mark.parametrize("position", [
    {"after": "x"}, {"after": None}, {"after": [1]}, {"after": {"a": 1}}, {"after": 10**30},
    {"after": -(10**30)}, {"after": 1.5e300}, {"after": True}, {"other": 1}, [1], "after", 7,
])
def test_a_forged_cursor_is_422(client: FlaskClient, auth: dict[str, str], path: str,
                                position: Any) -> None:
    resp = client.get(path, query_string={"cursor": _cursor(position)}, headers=auth)
    assert resp.status_code in (200, 422), resp.get_data(as_text=True)
    if resp.status_code == 422:
        assert "cursor" in assert_problem(422, resp.content_type, resp.data)["errors"]


@pytest.mark.parametrize("query", [
    {"since_seq": str(10**30)}, {"since_seq": str(2**63)}, {"limit": str(10**30)},
    {"action": "a\x00b"}, {"customer_id": "\x00"},
])
def test_out_of_range_audit_filters_are_422(client: FlaskClient, auth: dict[str, str],
                                            query: dict[str, str]) -> None:
    resp = client.get("/api/v1/audit", query_string=query, headers=auth)
    assert resp.status_code in (200, 422), resp.get_data(as_text=True)
    if resp.status_code == 422:
        assert_problem(422, resp.content_type, resp.data)


@pytest.mark.parametrize("url", ["http://[::1", "https://[zz]/hook", "http://a:99999999/x",
                                 "https://\x00/x", "javascript:alert(1)", "//127.0.0.1/x"])
def test_a_malformed_webhook_url_is_422(client: FlaskClient, auth: dict[str, str],
                                        url: str) -> None:
    resp = client.post("/api/v1/systems", headers=auth,
                       json={"name": f"s-{uuid.uuid4().hex[:8]}", "scopes": ["customers:read"],
                             "webhook_url": url})
    assert resp.status_code == 422, resp.get_data(as_text=True)
    assert "webhook_url" in assert_problem(422, resp.content_type, resp.data)["errors"]
