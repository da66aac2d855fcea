"""Systems and API keys (API.md "Systems and webhooks")."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import select

from privacy_hub.hub import Hub
from privacy_hub.models import System


def test_create_system_shows_key_once_and_stores_only_a_hash(
        client: FlaskClient, auth: dict[str, str], hub: Hub) -> None:
    resp = client.post("/api/v1/systems", json={
        "name": "newsletter", "scopes": ["consents:read"], "purposes": ["marketing.email"],
        "webhook_url": "http://127.0.0.1:9/hook"}, headers=auth)
    assert resp.status_code == 201, resp.json
    key, secret = resp.json["api_key"], resp.json["webhook_secret"]
    assert key.startswith("phk_") and secret.startswith("whsec_")
    with hub.sessions() as session:
        row = session.scalar(select(System).where(System.name == "newsletter"))
        assert row is not None
        assert key.encode() not in row.key_hash and key.split("_", 2)[2].encode() not in row.key_hash
        assert hub.systems.webhook_secret(row) == secret
    listed = client.get("/api/v1/systems", headers=auth).json["items"]
    assert {s["name"] for s in listed} == {"test-admin", "newsletter"}
    assert all("api_key" not in s for s in listed)
    new = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/audit", headers=new).status_code == 403


def test_system_validation(client: FlaskClient, auth: dict[str, str]) -> None:
    bad = client.post("/api/v1/systems", json={"name": "Bad Name", "scopes": ["nope"],
                                               "webhook_url": "http://example.com/hook"},
                      headers=auth)
    assert bad.status_code == 422
    assert {"name", "scopes.0"} <= set(bad.json["errors"])
    plain_http = client.post("/api/v1/systems", json={"name": "x", "scopes": ["audit:read"],
                                                      "webhook_url": "http://example.com/h"},
                             headers=auth)
    assert plain_http.status_code == 422 and "webhook_url" in plain_http.json["errors"]
    ok = client.post("/api/v1/systems", json={"name": "dup", "scopes": ["audit:read"]}, headers=auth)
    assert ok.status_code == 201
    dup = client.post("/api/v1/systems", json={"name": "dup", "scopes": ["audit:read"]}, headers=auth)
    assert dup.status_code == 409
