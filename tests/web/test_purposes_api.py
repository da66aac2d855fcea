"""Purposes and notices (API.md "Purposes", "Notices"; R-PURP, R-CREC-02)."""

from __future__ import annotations

import hashlib

from flask.testing import FlaskClient

from privacy_hub.hub import Hub
from tests.web.conftest import new_key

NEW = {"key": "loyalty.points", "title": "Loyalty points", "legal_basis": "contract",
       "retention_days": 365, "fields": ["email", "first_name"],
       "data_categories": ["contact data"], "recipients": ["loyalty"], "dpv": "dpv:CustomerRelationshipManagement"}


def test_create_read_list_purpose(client: FlaskClient, auth: dict[str, str]) -> None:
    resp = client.post("/api/v1/purposes", json=NEW, headers=auth)
    assert resp.status_code == 201, resp.json
    assert resp.json["version"] == 1 and resp.json["legal_basis"] == "contract"
    assert client.get("/api/v1/purposes/loyalty.points", headers=auth).json["title"] == "Loyalty points"
    keys = [p["key"] for p in client.get("/api/v1/purposes", headers=auth).json["items"]]
    assert keys == ["loyalty.points"]
    assert client.post("/api/v1/purposes", json=NEW, headers=auth).status_code == 409


def test_legitimate_interests_needs_lia_ref(client: FlaskClient, auth: dict[str, str]) -> None:
    """R-PURP-03."""
    body = {**NEW, "key": "fraud", "legal_basis": "legitimate_interests"}
    resp = client.post("/api/v1/purposes", json=body, headers=auth)
    assert resp.status_code == 422 and "lia_ref" in resp.json["errors"]
    assert client.post("/api/v1/purposes", json={**body, "lia_ref": "LIA-7"},
                       headers=auth).status_code == 201


def test_cross_field_rules(client: FlaskClient, auth: dict[str, str]) -> None:
    """Special categories need consent; trackers need consent and live at most 13 months."""
    cases = [
        ({"special_category": True}, "special_category"),
        ({"cookie_category": "statistics"}, "cookie_category"),
        ({"double_opt_in": True}, "double_opt_in"),
        ({"legal_basis": "consent", "cookie_category": "marketing", "consent_lifetime_days": 400},
         "consent_lifetime_days"),
        ({"fields": ["email", "password"]}, "fields.1"),
        ({"key": "Bad Key"}, "key"),
        ({"legal_basis": "whatever"}, "legal_basis"),
    ]
    for change, field in cases:
        resp = client.post("/api/v1/purposes", json={**NEW, **change}, headers=auth)
        assert resp.status_code == 422, change
        assert field in resp.json["errors"], (change, resp.json)


def test_legal_basis_never_changes_and_material_change_raises_version(
        client: FlaskClient, auth: dict[str, str]) -> None:
    """R-PURP-02, R-CONSENT-09."""
    client.post("/api/v1/purposes", json=NEW, headers=auth)
    resp = client.patch("/api/v1/purposes/loyalty.points", json={"legal_basis": "consent"},
                        headers=auth)
    assert resp.status_code == 409
    minor = client.patch("/api/v1/purposes/loyalty.points", json={"title": "Loyalty club"},
                         headers=auth)
    assert minor.status_code == 200 and minor.json["version"] == 1
    major = client.patch("/api/v1/purposes/loyalty.points",
                         json={"description": "Now shared with partners", "material": True},
                         headers=auth)
    assert major.json["version"] == 2
    assert client.patch("/api/v1/purposes/nope", json={"title": "x"}, headers=auth).status_code == 404


def test_purpose_management_needs_the_scope(client: FlaskClient, hub: Hub) -> None:
    reader = {"Authorization": "Bearer " + new_key(hub, "reader", ["consents:read"])}
    assert client.post("/api/v1/purposes", json=NEW, headers=reader).status_code == 403
    assert client.get("/api/v1/purposes", headers=reader).status_code == 200


def test_notices_are_immutable_with_their_sha256(client: FlaskClient, auth: dict[str, str]) -> None:
    """R-CREC-02: the exact text is retrievable; other text for a version is 409."""
    text = "We use your data for the purposes listed below. Contact privacy@shop.example."
    resp = client.post("/api/v1/notices", json={"version": "2026-10", "language": "en", "text": text},
                       headers=auth)
    assert resp.status_code == 201
    assert resp.json["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    same = client.post("/api/v1/notices", json={"version": "2026-10", "text": text}, headers=auth)
    assert same.status_code == 200
    other = client.post("/api/v1/notices", json={"version": "2026-10", "text": text + "!"},
                        headers=auth)
    assert other.status_code == 409
    got = client.get("/api/v1/notices/2026-10?language=en", headers=auth).json
    assert got["text"] == text and got["sha256"] == resp.json["sha256"]
    assert client.get("/api/v1/notices/2026-10?language=de", headers=auth).status_code == 404


def test_records_of_processing_and_gpc_resource(client: FlaskClient, auth: dict[str, str],
                                                catalogue: None) -> None:
    """R-ROPA-01/02, R-SIG-02."""
    ropa = client.get("/api/v1/ropa", headers=auth).json
    assert len(ropa["activities"]) == 9
    fraud = next(a for a in ropa["activities"] if a["purpose"] == "fraud_prevention")
    for key in ("legal_basis", "categories_of_data_subjects", "categories_of_personal_data",
                "recipients", "third_country_transfers", "retention", "security_measures"):
        assert fraud[key], key
    csv_resp = client.get("/api/v1/ropa?format=csv", headers=auth)
    assert csv_resp.mimetype == "text/csv" and csv_resp.data.count(b"\n") == 10
    gpc = client.get("/.well-known/gpc.json")
    assert gpc.mimetype == "application/json" and gpc.json["gpc"] is True
