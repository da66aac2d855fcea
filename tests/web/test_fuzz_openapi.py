"""Generated good and bad requests against every operation of the served OpenAPI document.

schemathesis reads ``/api/openapi.json`` from the app under test and drives each
operation in-process (WSGI) with schema-conforming (positive) and schema-violating
(negative) data. Whatever it sends, the API contract (shared/API.md, "Conventions")
must hold: no 5xx ever, every 4xx is an RFC 9457 problem document, and every answer
is a status code the document names for the operation or one the conventions give
to every operation.

The hand-written cases below pin the conventions' status codes one by one.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import hypothesis
import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
)

from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from tests.web.conftest import new_key

MAX_EXAMPLES = 40
PROBLEM_JSON = "application/problem+json"
#: Status codes the conventions allow on any operation, documented or not:
#: malformed JSON, unknown id, state conflict, too large, wrong media type, rate limit.
CONVENTION_STATUSES = {400, 404, 405, 409, 413, 415, 429}


@pytest.fixture
def db_backend() -> str:
    """The generated traffic is about the HTTP layer: SQLite is enough (and fast)."""
    return "sqlite"


@pytest.fixture
def seeded_ids(hub: Hub) -> list[str]:
    """A few real customers, so generated ids sometimes hit existing rows."""
    ids = []
    with transaction(hub.sessions) as session:
        for i in range(3):
            profile, _ = hub.vault.upsert(
                session, {"email": f"fuzz-seed-{i}@example.org", "first_name": "Seed"},
                actor=__import__("audit").Actor("cli", "tests"))
            ids.append(profile["id"])
    return ids


@pytest.fixture
def api_schema(app: Flask) -> Any:
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=MAX_EXAMPLES,
        deterministic=True,
        database="none",
    )
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


def _documented_statuses(case: schemathesis.Case) -> set[int]:
    return {int(code) for code in case.operation.responses.status_codes if code.isdigit()}


def _assert_problem(response: schemathesis.Response) -> None:
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.split(";")[0].strip() == PROBLEM_JSON, (
        f"{response.status_code} answered with {content_type!r}, not a problem document")
    body = json.loads(response.content)
    for member in ("type", "title", "status", "detail"):
        assert member in body, f"problem document lacks {member!r}: {body}"
    assert body["status"] == response.status_code
    assert isinstance(body["detail"], str) and body["detail"]
    if "errors" in body:
        assert isinstance(body["errors"], dict)
        assert all(isinstance(v, list) for v in body["errors"].values())


def _aim_at_a_real_customer(case: schemathesis.Case, seeded_ids: list[str]) -> None:
    """Point half of the positive path ids at existing customers (deterministically)."""
    path = case.path_parameters or {}
    if "customer_id" not in path or case.meta is None:
        return
    from schemathesis.core.parameters import ParameterLocation

    if case.meta.is_negative_at(ParameterLocation.PATH):
        return
    digest = hashlib.sha256(str(path["customer_id"]).encode()).digest()
    if digest[0] % 2 == 0:
        path["customer_id"] = seeded_ids[digest[1] % len(seeded_ids)]


@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_every_operation_answers_within_the_contract(
        case: schemathesis.Case, auth: dict[str, str], seeded_ids: list[str]) -> None:
    """API.md Conventions: a 500 on any input is a bug; errors are problem documents."""
    _aim_at_a_real_customer(case, seeded_ids)
    response = case.call(headers=auth)
    status = response.status_code
    assert status < 500, f"{case.operation.label} answered {status}: {response.text[:500]}"
    allowed = _documented_statuses(case) | CONVENTION_STATUSES
    assert status in allowed, (
        f"{case.operation.label} answered {status}, documented: {sorted(_documented_statuses(case))}")
    if 400 <= status < 500:
        _assert_problem(response)
    else:
        case.validate_response(
            response, checks=[content_type_conformance, response_schema_conformance])
    if case.meta is not None and case.meta.generation.mode.is_negative:
        case.validate_response(response, checks=[negative_data_rejection])
