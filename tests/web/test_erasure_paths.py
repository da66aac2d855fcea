"""`DELETE /customers/{id}` is an erasure request (R-ERASE-01/02/07, Art. 17, 19): it ends
exactly where a verified `POST /requests` of type erasure ends."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask.testing import FlaskClient
from sqlalchemy import select

from consent import flags
from privacy_hub.hub import Hub
from privacy_hub.jobs.outbox import OutboxJob, open_payload
from privacy_hub.vault.errors import KeyDestroyed
from privacy_hub.vault.keystore import CustomerKey
from privacy_hub.vault.models import RetainedRecord

PROFILE = {"first_name": "Ada", "last_name": "Lovelace", "phone": "+4915112345678",
           "external_id": None, "address": {"line1": "1 Main St", "city": "London",
                                             "country": "GB"}}


def _customer(client: FlaskClient, auth: dict[str, str], email: str) -> str:
    resp = client.post("/api/v1/customers", json={**PROFILE, "email": email}, headers=auth)
    assert resp.status_code == 201
    cid = str(resp.json["id"])
    for purpose in ("analytics.behaviour", "marketing.sms"):
        granted = client.post(f"/api/v1/customers/{cid}/consents",
                              json={"purpose": purpose, "granted": True}, headers=auth)
        assert granted.status_code == 201
    return cid


def _end_state(client: FlaskClient, auth: dict[str, str], hub: Hub, cid: str) -> dict[str, Any]:
    """Everything an erasure must leave behind, with the customer's id taken out."""
    with hub.sessions() as s:
        assert s.get(CustomerKey, (cid, "default")) is None
        with pytest.raises(KeyDestroyed):
            hub.keyring.data_key(s, cid)
        retained = s.scalars(select(RetainedRecord).where(RetainedRecord.customer_id == cid)).all()
        held = s.get(CustomerKey, (cid, "legal_retention")) is not None
        erased_flag = flags.flags_for(s, cid).erased
        aead = AESGCM(hub.keyring.hub_key(s, "app_secrets"))
        told = sorted(
            str(job.system_id) for job in s.scalars(select(OutboxJob).where(
                OutboxJob.event_type == "customer.erased"))
            if open_payload(aead, job.id, job.payload_ct)["data"]["customer_id"] == cid)  # type: ignore[arg-type]
    profile = client.get(f"/api/v1/customers/{cid}", headers=auth).json
    states = client.get(f"/api/v1/customers/{cid}/consents", headers=auth).json["items"]
    entries = client.get(f"/api/v1/audit?customer_id={cid}&limit=1000", headers=auth).json
    return {
        "profile": sorted(profile), "status": profile["status"],
        "legal_hold": sorted((r.purpose, held) for r in retained),
        "told": told, "flag_erased": erased_flag,
        "consents": sorted((i["purpose"], i["status"]) for i in states
                           if i["purpose"] in ("analytics.behaviour", "marketing.sms")),
        "audit_actions": [e["action"] for e in entries["items"]],
    }


def test_delete_erases_exactly_as_a_verified_erasure_request_does(
        client: FlaskClient, auth: dict[str, str], catalogue: None, hub: Hub) -> None:
    """Data key destroyed (no field decryptable), legal-hold copies kept, every system
    with a webhook told (`customer.erased`), flags erased, consents withdrawn, the same
    audit trail: the only difference is the door the erasure came through."""
    systems = [client.post("/api/v1/systems", json={
        "name": name, "scopes": ["consents:read"],
        "webhook_url": f"http://127.0.0.1:9/{name}"}, headers=auth).json["id"]
        for name in ("crm", "newsletter")]
    client.post("/api/v1/systems", json={"name": "no-hook", "scopes": ["consents:read"]},
                headers=auth)
    deleted = _customer(client, auth, "deleted@example.org")
    requested = _customer(client, auth, "requested@example.org")

    tombstone = client.delete(f"/api/v1/customers/{deleted}", headers=auth)
    assert tombstone.status_code == 200
    assert set(tombstone.json) == {"id", "status", "erased_at"}
    assert tombstone.json["status"] == "erased"
    made = client.post("/api/v1/requests", json={
        "type": "erasure", "customer_id": requested, "identity_verified": True,
        "verification_method": "api_key"}, headers=auth)
    assert made.status_code == 201

    by_delete = _end_state(client, auth, hub, deleted)
    by_request = _end_state(client, auth, hub, requested)
    assert by_delete == by_request
    assert by_delete["status"] == "erased" and by_delete["flag_erased"] is True
    assert by_delete["legal_hold"] == [("invoicing", True)]
    assert by_delete["told"] == sorted(systems)
    assert by_delete["consents"] == [("analytics.behaviour", "withdrawn"),
                                     ("marketing.sms", "withdrawn")]
    assert "customer.erased" in by_delete["audit_actions"]


def test_delete_again_returns_the_tombstone_and_an_unknown_id_is_404(
        client: FlaskClient, auth: dict[str, str], catalogue: None, hub: Hub) -> None:
    """Repeating an erasure is harmless; it starts no second request."""
    cid = _customer(client, auth, "twice@example.org")
    first = client.delete(f"/api/v1/customers/{cid}", headers=auth)
    again = client.delete(f"/api/v1/customers/{cid}", headers=auth)
    assert again.status_code == 200 and again.json == first.json
    listed = client.get("/api/v1/requests?type=erasure", headers=auth).json["items"]
    assert [r["customer_id"] for r in listed] == [cid]
    assert client.delete("/api/v1/customers/00000000-0000-4000-8000-000000000000",
                         headers=auth).status_code == 404
    assert client.delete("/api/v1/customers/not-an-id", headers=auth).status_code == 404
