"""API.md "Conventions": problem documents, pagination, idempotency, OpenAPI, health."""

from __future__ import annotations

from flask.testing import FlaskClient

from privacy_hub.hub import Hub
from tests.conftest import SEED_EMAIL


def test_malformed_json_is_400_problem(client: FlaskClient, auth: dict[str, str]) -> None:
    resp = client.post("/api/v1/customers", data="{bad", headers={**auth, "Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.headers["Content-Type"] == "application/problem+json"
    assert resp.json["detail"] == "The request body is not valid JSON."
    assert set(resp.json) >= {"type", "title", "status", "detail"}


def test_non_object_body_is_422(client: FlaskClient, auth: dict[str, str]) -> None:
    resp = client.post("/api/v1/customers", json=["a"], headers=auth)
    assert resp.status_code == 422


def test_wrong_content_type_is_415(client: FlaskClient, auth: dict[str, str]) -> None:
    resp = client.post("/api/v1/customers", data="email=a@b.de",
                       headers={**auth, "Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status_code == 415


def test_oversized_body_is_413(client: FlaskClient, auth: dict[str, str]) -> None:
    resp = client.post("/api/v1/customers", json={"email": "a@b.de", "first_name": "x" * 1_100_000},
                       headers=auth)
    assert resp.status_code == 413
    assert resp.headers["Content-Type"] == "application/problem+json"


def test_unknown_route_and_method_are_problems(client: FlaskClient, auth: dict[str, str]) -> None:
    assert client.get("/api/v1/nothing-here", headers=auth).status_code == 404
    resp = client.put("/api/v1/customers", json={}, headers=auth)
    assert resp.status_code == 405 and "POST" in resp.headers["Allow"]


def test_idempotent_retry_returns_the_first_response_and_changes_nothing(
        client: FlaskClient, auth: dict[str, str]) -> None:
    headers = {**auth, "Idempotency-Key": "k-123"}
    first = client.post("/api/v1/customers", json={"email": SEED_EMAIL}, headers=headers)
    again = client.post("/api/v1/customers", json={"email": SEED_EMAIL}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json == first.json and again.headers["Idempotent-Replayed"] == "true"
    entries = client.get("/api/v1/audit?action=customer.created&limit=1000", headers=auth).json
    assert sum(1 for e in entries["items"] if e["customer_id"] == first.json["id"]) == 1
    other = client.post("/api/v1/customers", json={"email": "other@example.org"}, headers=headers)
    assert other.status_code == 422 and "Idempotency-Key" in other.json["errors"]


def test_idempotency_record_of_an_erased_customer_is_dropped(
        client: FlaskClient, auth: dict[str, str], hub: Hub) -> None:
    from sqlalchemy import func, select

    from privacy_hub.models import IdempotencyRecord

    cid = client.post("/api/v1/customers", json={"email": SEED_EMAIL},
                      headers={**auth, "Idempotency-Key": "erase-me"}).json["id"]
    client.delete(f"/api/v1/customers/{cid}", headers=auth)
    with hub.sessions() as session:
        assert session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 0


def test_audit_list_paginates_with_opaque_cursor(client: FlaskClient, auth: dict[str, str]) -> None:
    for i in range(7):
        client.post("/api/v1/customers", json={"email": f"p{i}@example.org"}, headers=auth)
    seen, cursor = [], None
    while True:
        url = "/api/v1/audit?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=auth).json
        assert len(page["items"]) <= 3
        seen += [e["seq"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) >= 8
    assert client.get("/api/v1/audit?cursor=garbage!", headers=auth).status_code == 422
    assert client.get("/api/v1/audit?limit=1001", headers=auth).status_code == 422
    assert client.get("/api/v1/audit?limit=0", headers=auth).status_code == 422


def test_openapi_document_lists_every_endpoint_with_security(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").json
    assert spec["openapi"].startswith("3.")
    for path in ("/api/v1/customers", "/api/v1/customers/lookup", "/api/v1/customers/{customer_id}",
                 "/api/v1/systems", "/api/v1/audit", "/api/v1/audit/verify"):
        assert path in spec["paths"], path
    post = spec["paths"]["/api/v1/customers"]["post"]
    assert post["security"] == [{"bearerAuth": ["customers:write"]}]
    assert "422" in post["responses"] and "401" in post["responses"]
    assert any(p == {"$ref": "#/components/parameters/IdempotencyKey"} for p in post["parameters"])
    docs = client.get("/api/docs")
    assert docs.status_code == 200 and b"/api/v1/customers/lookup" in docs.data


def test_health_endpoints(client: FlaskClient) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").json == {"status": "ok"}


def test_openapi_documents_errors_as_problem_documents(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").json
    for name in ("DEFAULT_ERROR", "UNPROCESSABLE_ENTITY", "NotFound", "Conflict"):
        assert list(spec["components"]["responses"][name]["content"]) == ["application/problem+json"]
    item = spec["paths"]["/api/v1/customers/{customer_id}"]
    assert "404" in item["get"]["responses"] and "409" in item["patch"]["responses"]
    assert "Error" not in spec["components"]["schemas"]
