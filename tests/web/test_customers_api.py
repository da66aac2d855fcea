"""Customers through the API: create-or-update, lookup, read, rectify, erase (API.md "Customers")."""

from __future__ import annotations

import json
from typing import Any

from flask.testing import FlaskClient

from privacy_hub.hub import Hub
from tests.conftest import SEED_EMAIL, SEED_NAME, SEED_PHONE
from tests.web.conftest import new_key

BODY = {"email": SEED_EMAIL, "first_name": "Ada", "last_name": SEED_NAME, "phone": SEED_PHONE,
        "external_id": "shop-42", "birth_date": "1990-12-10", "locale": "en-GB",
        "address": {"line1": "1 Analytical Row", "postal_code": "N1", "city": "London",
                    "country": "GB"},
        "attributes": {"newsletter_source": "checkout"}}


def post(client: FlaskClient, auth: dict[str, str], path: str, body: Any, **headers: str) -> Any:
    return client.post(path, json=body, headers={**auth, **headers})


def test_create_returns_201_with_id_and_every_field(client: FlaskClient, auth: dict[str, str]) -> None:
    resp = post(client, auth, "/api/v1/customers", BODY)
    assert resp.status_code == 201, resp.json
    data = resp.json
    assert data["id"] and data["status"] == "active"
    assert data["email"] == SEED_EMAIL.lower()
    assert data["address"]["city"] == "London"
    assert data["birth_date"] == "1990-12-10"
    assert data["created_at"].endswith("Z")


def test_same_external_id_updates_with_200(client: FlaskClient, auth: dict[str, str]) -> None:
    first = post(client, auth, "/api/v1/customers", BODY).json
    resp = post(client, auth, "/api/v1/customers", {"external_id": "shop-42", "first_name": "Augusta"})
    assert resp.status_code == 200
    assert resp.json["id"] == first["id"] and resp.json["first_name"] == "Augusta"
    assert resp.json["email"] == SEED_EMAIL.lower()  # untouched fields stay


def test_same_email_in_another_case_updates(client: FlaskClient, auth: dict[str, str]) -> None:
    first = post(client, auth, "/api/v1/customers", {"email": "Jane@Example.com"}).json
    resp = post(client, auth, "/api/v1/customers", {"email": " jane@example.COM", "locale": "de"})
    assert resp.status_code == 200 and resp.json["id"] == first["id"]


def test_create_without_email_is_422_naming_email(client: FlaskClient, auth: dict[str, str]) -> None:
    resp = post(client, auth, "/api/v1/customers", {"first_name": "NoMail"})
    assert resp.status_code == 422
    assert "email" in resp.json["errors"]


def test_invalid_fields_are_422_with_every_field_named(client: FlaskClient, auth: dict[str, str]) -> None:
    resp = post(client, auth, "/api/v1/customers", {
        "email": "not-an-email", "birth_date": "3000-01-01", "locale": "!!",
        "address": {"country": "Germany"}, "favourite_colour": "blue"})
    assert resp.status_code == 422
    assert resp.headers["Content-Type"] == "application/problem+json"
    errors = resp.json["errors"]
    assert set(errors) == {"email", "birth_date", "locale", "address.country", "favourite_colour"}
    assert errors["favourite_colour"] == ["Unknown field."]
    assert "not-an-email" not in json.dumps(resp.json)  # bad values are not echoed


def test_bad_phone_is_422_from_the_vault(client: FlaskClient, auth: dict[str, str]) -> None:
    resp = post(client, auth, "/api/v1/customers", {"email": "p@example.com", "phone": "12"})
    assert resp.status_code == 422 and "phone" in resp.json["errors"]


def test_lookup_returns_ids_only(client: FlaskClient, auth: dict[str, str]) -> None:
    created = post(client, auth, "/api/v1/customers", BODY).json
    for query in ({"email": SEED_EMAIL.upper()}, {"phone": SEED_PHONE}, {"external_id": "shop-42"}):
        resp = post(client, auth, "/api/v1/customers/lookup", query)
        assert resp.status_code == 200
        assert resp.json == {"items": [{"id": created["id"]}]}
    assert post(client, auth, "/api/v1/customers/lookup", {"email": "x@y.de"}).json == {"items": []}


def test_lookup_needs_exactly_one_identifier(client: FlaskClient, auth: dict[str, str]) -> None:
    assert post(client, auth, "/api/v1/customers/lookup", {}).status_code == 422
    both = post(client, auth, "/api/v1/customers/lookup", {"email": "a@b.de", "phone": "+491511"})
    assert both.status_code == 422


def test_get_returns_profile_and_unknown_or_malformed_id_is_404(
        client: FlaskClient, auth: dict[str, str]) -> None:
    created = post(client, auth, "/api/v1/customers", BODY).json
    resp = client.get(f"/api/v1/customers/{created['id']}", headers=auth)
    assert resp.status_code == 200 and resp.json["last_name"] == SEED_NAME
    assert client.get("/api/v1/customers/00000000-0000-4000-8000-000000000000",
                      headers=auth).status_code == 404
    assert client.get("/api/v1/customers/not-a-uuid", headers=auth).status_code == 404


def test_patch_rectifies_and_null_clears_optional_fields(client: FlaskClient, auth: dict[str, str]) -> None:
    cid = post(client, auth, "/api/v1/customers", BODY).json["id"]
    resp = client.patch(f"/api/v1/customers/{cid}", json={"last_name": "Byron", "phone": None},
                        headers=auth)
    assert resp.status_code == 200
    assert resp.json["last_name"] == "Byron" and resp.json["phone"] is None
    assert client.get(f"/api/v1/customers/{cid}", headers=auth).json["last_name"] == "Byron"
    assert client.patch(f"/api/v1/customers/{cid}", json={"email": None}, headers=auth).status_code == 422
    assert client.patch(f"/api/v1/customers/{cid}", json={}, headers=auth).status_code == 422


def test_patch_tells_every_subscribed_system_which_fields_changed(
        client: FlaskClient, auth: dict[str, str], hub: Hub) -> None:
    """R-RRO-01 (Art. 19): a rectification reaches the recipients as `customer.rectified`,
    naming the fields, never their values."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from sqlalchemy import select

    from privacy_hub.jobs.outbox import OutboxJob, open_payload

    crm = client.post("/api/v1/systems", json={"name": "crm", "scopes": ["customers:read"],
                                               "webhook_url": "http://127.0.0.1:9/crm"},
                      headers=auth).json
    cid = post(client, auth, "/api/v1/customers", BODY).json["id"]
    resp = client.patch(f"/api/v1/customers/{cid}",
                        json={"last_name": "Byron", "address": {"city": "Leeds"}}, headers=auth)
    assert resp.status_code == 200
    with hub.sessions() as s:
        jobs = s.scalars(select(OutboxJob).where(
            OutboxJob.event_type == "customer.rectified")).all()
        aead = AESGCM(hub.keyring.hub_key(s, "app_secrets"))
        payloads = [open_payload(aead, j.id, j.payload_ct) for j in jobs]  # type: ignore[arg-type]
    assert [j.system_id for j in jobs] == [crm["id"]]
    assert payloads[0]["data"] == {"customer_id": cid, "fields": ["address", "last_name"]}
    assert "Byron" not in json.dumps(payloads) and "Leeds" not in json.dumps(payloads)
    refused = client.patch(f"/api/v1/customers/{cid}", json={"email": None}, headers=auth)
    assert refused.status_code == 422
    with hub.sessions() as s:
        assert len(s.scalars(select(OutboxJob).where(
            OutboxJob.event_type == "customer.rectified")).all()) == 1


def test_patch_to_an_email_of_another_customer_is_409(client: FlaskClient, auth: dict[str, str]) -> None:
    post(client, auth, "/api/v1/customers", {"email": "one@example.com"})
    two = post(client, auth, "/api/v1/customers", {"email": "two@example.com"}).json["id"]
    resp = client.patch(f"/api/v1/customers/{two}", json={"email": "ONE@example.com"}, headers=auth)
    assert resp.status_code == 409 and "email" in resp.json["errors"]


def test_erase_leaves_tombstone_then_patch_is_409(client: FlaskClient, auth: dict[str, str]) -> None:
    cid = post(client, auth, "/api/v1/customers", BODY).json["id"]
    resp = client.delete(f"/api/v1/customers/{cid}", headers=auth)
    assert resp.status_code == 200 and resp.json["status"] == "erased"
    got = client.get(f"/api/v1/customers/{cid}", headers=auth).json
    assert set(got) == {"id", "status", "erased_at"}
    assert client.patch(f"/api/v1/customers/{cid}", json={"first_name": "X"}, headers=auth).status_code == 409
    assert client.delete(f"/api/v1/customers/{cid}", headers=auth).status_code == 200
    again = post(client, auth, "/api/v1/customers", {"email": SEED_EMAIL})
    assert again.status_code == 201 and again.json["id"] != cid


def test_scopes_are_enforced(client: FlaskClient, hub: Hub) -> None:
    reader = {"Authorization": "Bearer " + new_key(hub, "reader", ["customers:read"])}
    resp = client.post("/api/v1/customers", json={"email": "a@b.de"}, headers=reader)
    assert resp.status_code == 403
    assert "customers:write" in resp.json["detail"]
    assert client.post("/api/v1/customers/lookup", json={"email": "a@b.de"},
                       headers=reader).status_code == 200


def test_missing_or_wrong_key_is_401(client: FlaskClient, api_key: str) -> None:
    assert client.get("/api/v1/audit").status_code == 401
    for header in ("Bearer nope", "Bearer " + api_key[:-2] + "xx", "Basic abc", api_key):
        resp = client.get("/api/v1/audit", headers={"Authorization": header})
        assert resp.status_code == 401, header
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_every_customer_operation_is_audited_without_personal_data(
        client: FlaskClient, auth: dict[str, str]) -> None:
    cid = post(client, auth, "/api/v1/customers", BODY).json["id"]
    client.get(f"/api/v1/customers/{cid}", headers=auth)
    client.patch(f"/api/v1/customers/{cid}", json={"first_name": "A"}, headers=auth)
    post(client, auth, "/api/v1/customers/lookup", {"email": SEED_EMAIL})
    client.delete(f"/api/v1/customers/{cid}", headers=auth)
    entries = client.get(f"/api/v1/audit?customer_id={cid}&limit=100", headers=auth).json["items"]
    actions = [e["action"] for e in entries]
    # DELETE erases through an erasure request, verified at once on the key's authority
    assert actions == ["customer.created", "customer.read", "customer.rectified",
                       "customer.looked_up", "request.received", "request.verified",
                       "request.processing", "processing.erased", "customer.erased",
                       "request.completed"]
    assert all(e["actor"] == {"type": "system", "id": "test-admin"} for e in entries)
    dump = json.dumps(client.get("/api/v1/audit?limit=1000", headers=auth).json)
    for needle in (SEED_EMAIL, SEED_NAME, SEED_PHONE, "shop-42", "London"):
        assert needle not in dump
    assert client.get("/api/v1/audit/verify", headers=auth).json["ok"] is True


def test_supplementary_statement_is_sealed_audited_without_text_and_in_the_access_export(
        client: FlaskClient, auth: dict[str, str], catalogue: None, hub: Hub) -> None:
    """R-RRO-01 (Art. 16): staff attach the subject's supplementary statement; it is read
    back decrypted, shown in the access export (not the portability one), audited by id
    only, and unreadable once the customer is erased."""
    import io
    import zipfile

    from sqlalchemy import select

    from privacy_hub.vault.models import CustomerStatement

    cid = post(client, auth, "/api/v1/customers", BODY).json["id"]
    text = "My address changed in May; the old one was never mine."
    bad = client.post(f"/api/v1/customers/{cid}/statements",
                      json={"text": "", "concerns": ["shoe_size"], "extra": 1}, headers=auth)
    assert bad.status_code == 422
    assert {"text", "concerns.0", "extra"} <= set(bad.json["errors"])
    made = client.post(f"/api/v1/customers/{cid}/statements",
                       json={"text": text, "concerns": ["address"]}, headers=auth)
    assert made.status_code == 201, made.json
    assert made.json["text"] == text and made.json["concerns"] == ["address"]
    listed = client.get(f"/api/v1/customers/{cid}/statements", headers=auth).json["items"]
    assert [s["text"] for s in listed] == [text]
    with hub.sessions() as s:
        row = s.scalars(select(CustomerStatement)).one()
        assert text.encode() not in row.text_ct
    entries = client.get("/api/v1/audit", query_string={"customer_id": cid},
                         headers=auth).json["items"]
    assert "customer.statement_added" in {e["action"] for e in entries}
    assert "May" not in json.dumps(entries)

    def export(kind: str) -> dict[str, Any]:
        rid = client.post("/api/v1/requests", json={
            "type": kind, "customer_id": cid, "identity_verified": True,
            "verification_method": "signed_in"}, headers=auth).json["id"]
        archive = client.get(f"/api/v1/requests/{rid}/export", headers=auth).data
        with zipfile.ZipFile(io.BytesIO(archive)) as zf:
            data: dict[str, Any] = json.loads(zf.read("data.json"))
            data["_files"] = zf.namelist()
            return data

    access = export("access")
    assert [s["text"] for s in access["supplementary_statements"]] == [text]
    assert "supplementary_statements.csv" in access["_files"]
    assert "supplementary_statements" not in export("portability")
    assert client.delete(f"/api/v1/customers/{cid}", headers=auth).status_code == 200
    assert client.get(f"/api/v1/customers/{cid}/statements", headers=auth).json["items"] == []
    gone = client.post(f"/api/v1/customers/{cid}/statements", json={"text": "x"}, headers=auth)
    assert gone.status_code == 409
