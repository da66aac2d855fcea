"""The gate through the API (API.md "The gate"; R-GATE-01..08, R-CONSENT-07)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

import audit
from consent import flags
from consent.models import ConsentCheck
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from tests.conftest import SEED_EMAIL
from tests.web.conftest import new_key

DPO = audit.Actor("staff", "dpo-1")


def check(client: FlaskClient, auth: dict[str, str], cid: str, purpose: str, **extra: str) -> Any:
    query = "&".join(f"{k}={v}" for k, v in {"customer_id": cid, "purpose": purpose, **extra}.items())
    return client.get(f"/api/v1/consent-check?{query}", headers=auth)


def grant(client: FlaskClient, auth: dict[str, str], cid: str, purpose: str, granted: bool = True) -> None:
    resp = client.post(f"/api/v1/customers/{cid}/consents", json={"purpose": purpose, "granted": granted},
                       headers=auth)
    assert resp.status_code == 201, resp.json


def test_answer_has_every_field(client: FlaskClient, auth: dict[str, str], catalogue: None,
                                customer_id: str) -> None:
    """R-GATE-03."""
    grant(client, auth, customer_id, "personalisation.recommendations")
    body = check(client, auth, customer_id, "personalisation.recommendations").json
    assert body["allowed"] is True and body["reason"] == "granted"
    assert body["legal_basis"] == "consent" and body["customer_id"] == customer_id
    assert body["valid_until"].endswith("Z")  # the purpose's consent lifetime


def test_default_deny_and_purpose_binding(client: FlaskClient, auth: dict[str, str],
                                          catalogue: None, customer_id: str) -> None:
    """R-GATE-01, R-GATE-04: nothing given means deny; A never allows B."""
    assert check(client, auth, customer_id, "marketing.sms").json["reason"] == "not_granted"
    grant(client, auth, customer_id, "marketing.sms")
    assert check(client, auth, customer_id, "marketing.sms").json["allowed"] is True
    assert check(client, auth, customer_id, "analytics.behaviour").json["allowed"] is False
    unknown = check(client, auth, str(uuid.uuid4()), "marketing.sms").json
    assert unknown["reason"] == "unknown_customer" and unknown["allowed"] is False
    assert check(client, auth, "not-a-uuid", "marketing.sms").json["reason"] == "unknown_customer"
    assert check(client, auth, customer_id, "no.such.purpose").status_code == 404


def test_other_legal_bases_allow_with_their_basis(client: FlaskClient, auth: dict[str, str],
                                                  catalogue: None, customer_id: str) -> None:
    """R-GATE-05."""
    body = check(client, auth, customer_id, "orders.fulfilment").json
    assert body["allowed"] is True and body["reason"] == "legal_basis"
    assert body["legal_basis"] == "contract"


def test_restriction_objection_and_erasure_through_consent_services(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str,
        hub: Hub) -> None:
    """R-GATE-06, R-GATE-07, R-RRO-03: the flags dsar/ will set, tested directly."""
    grant(client, auth, customer_id, "marketing.sms")
    with transaction(hub.sessions) as s:
        flags.restrict(s, customer_id, ground="accuracy_contested", actor=DPO)
    assert check(client, auth, customer_id, "marketing.sms").json["reason"] == "restricted"
    assert check(client, auth, customer_id, "orders.fulfilment").json["reason"] == "restricted"
    assert check(client, auth, customer_id, "invoicing").json["allowed"] is True
    with transaction(hub.sessions) as s:
        assert flags.lift_restriction(s, customer_id, actor=DPO)
    assert check(client, auth, customer_id, "marketing.sms").json["allowed"] is True

    with transaction(hub.sessions) as s:
        flags.object_to(s, customer_id, None, actor=DPO)  # all direct marketing
    assert check(client, auth, customer_id, "marketing.sms").json["reason"] == "objected"
    assert check(client, auth, customer_id, "fraud_prevention").json["allowed"] is True
    with transaction(hub.sessions) as s:
        flags.object_to(s, customer_id, ["fraud_prevention"], actor=DPO)
    assert check(client, auth, customer_id, "fraud_prevention").json["reason"] == "objected"
    with transaction(hub.sessions) as s:
        flags.record_compelling_grounds(s, customer_id, "fraud_prevention",
                                        grounds="open chargeback investigation #4711", actor=DPO)
    assert check(client, auth, customer_id, "fraud_prevention").json["allowed"] is True
    from consent.errors import Conflict

    with transaction(hub.sessions) as s, pytest.raises(Conflict):
        flags.record_compelling_grounds(s, customer_id, "marketing.sms", grounds="x", actor=DPO)

    with transaction(hub.sessions) as s:
        flags.mark_erased(s, customer_id, actor=DPO)
    assert check(client, auth, customer_id, "orders.fulfilment").json["reason"] == "erased"


def test_historical_check_needs_audit_read(client: FlaskClient, auth: dict[str, str],
                                           catalogue: None, customer_id: str, hub: Hub) -> None:
    """R-CONSENT-07: a check at a time before the withdrawal answers as it did then."""
    grant(client, auth, customer_id, "marketing.sms")
    time.sleep(0.01)
    from audit.clock import rfc3339, utcnow

    between = rfc3339(utcnow())
    time.sleep(0.01)
    grant(client, auth, customer_id, "marketing.sms", granted=False)
    assert check(client, auth, customer_id, "marketing.sms").json["reason"] == "withdrawn"
    then = check(client, auth, customer_id, "marketing.sms", at=between)
    assert then.status_code == 200 and then.json["allowed"] is True
    before = check(client, auth, customer_id, "marketing.sms", at="2000-01-01T00:00:00Z").json
    assert before["reason"] == "unknown_customer"
    reader = {"Authorization": "Bearer " + new_key(hub, "reader", ["consents:read"])}
    assert check(client, reader, customer_id, "marketing.sms", at=between).status_code == 403


def test_batch_keeps_order_and_limits_size(client: FlaskClient, auth: dict[str, str],
                                           catalogue: None, customer_id: str) -> None:
    grant(client, auth, customer_id, "marketing.sms")
    other = str(uuid.uuid4())
    resp = client.post("/api/v1/consent-check", json={
        "purpose": "marketing.sms", "customer_ids": [other, customer_id, "junk", customer_id]},
        headers=auth)
    assert resp.status_code == 200
    assert [(r["customer_id"], r["allowed"], r["reason"]) for r in resp.json["results"]] == [
        (other, False, "unknown_customer"), (customer_id, True, "granted"),
        ("junk", False, "unknown_customer"), (customer_id, True, "granted")]
    too_many = client.post("/api/v1/consent-check", json={
        "purpose": "marketing.sms", "customer_ids": [other] * 10_001}, headers=auth)
    assert too_many.status_code == 422


def test_audience_pages_through_allowed_customers(client: FlaskClient, auth: dict[str, str],
                                                  catalogue: None) -> None:
    ids = []
    for i in range(7):
        cid = client.post("/api/v1/customers", json={"email": f"a{i}@example.org"},
                          headers=auth).json["id"]
        ids.append(cid)
        if i % 2 == 0:
            grant(client, auth, cid, "marketing.sms")
    expected = sorted(ids[i] for i in range(7) if i % 2 == 0)
    seen, cursor = [], None
    while True:
        body: dict[str, Any] = {"purpose": "marketing.sms", "limit": 2}
        if cursor:
            body["cursor"] = cursor
        page = client.post("/api/v1/audiences", json=body, headers=auth).json
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == expected
    everyone = client.post("/api/v1/audiences", json={"purpose": "orders.fulfilment", "limit": 100},
                           headers=auth).json
    assert sorted(everyone["items"]) == sorted(ids)
    subset = client.post("/api/v1/audiences", json={"purpose": "marketing.sms",
                                                   "customer_ids": [ids[1], ids[2]]}, headers=auth).json
    assert subset["items"] == [ids[2]]


def test_purpose_bound_data_read(client: FlaskClient, auth: dict[str, str], catalogue: None,
                                 customer_id: str) -> None:
    """Only the purpose's fields, only while allowed; every call audited."""
    denied = client.get(f"/api/v1/customers/{customer_id}/data?purpose=marketing.sms", headers=auth)
    assert denied.status_code == 403 and denied.json["reason"] == "not_granted"
    assert SEED_EMAIL not in denied.get_data(as_text=True)
    grant(client, auth, customer_id, "marketing.sms")
    allowed = client.get(f"/api/v1/customers/{customer_id}/data?purpose=marketing.sms", headers=auth)
    assert allowed.status_code == 200
    assert allowed.json["data"] == {"phone": "+4915112345678", "first_name": "Ada"}
    actions = [e["action"] for e in client.get(
        f"/api/v1/audit?customer_id={customer_id}&limit=1000", headers=auth).json["items"]]
    assert "data.read_denied" in actions and actions.count("customer.read") == 1


def test_events_are_stored_only_when_the_gate_allows(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str,
        hub: Hub) -> None:
    from privacy_hub.vault.models import CustomerEvent

    event = {"customer_id": customer_id, "type": "product_view", "purpose": "analytics.behaviour",
             "occurred_at": "2026-11-20T10:00:00Z", "properties": {"sku": "SKU-1"}}
    assert client.post("/api/v1/events", json={"events": [event]}, headers=auth).json == {
        "accepted": 0, "dropped": 1}
    grant(client, auth, customer_id, "analytics.behaviour")
    both = client.post("/api/v1/events", json={"events": [
        event, {**event, "customer_id": str(uuid.uuid4())}]}, headers=auth).json
    assert both == {"accepted": 1, "dropped": 1}
    with hub.sessions() as s:
        row = s.scalars(select(CustomerEvent)).one()
        assert b"SKU-1" not in row.payload_ct  # sealed under the customer's key
    bad = client.post("/api/v1/events", json={"events": [{**event, "occurred_at": "2999-01-01T00:00:00Z"}]},
                      headers=auth)
    assert bad.status_code == 422


def test_every_check_is_logged(client: FlaskClient, auth: dict[str, str], catalogue: None,
                               customer_id: str, hub: Hub) -> None:
    """R-GATE-08: caller, purpose, subject and decision of every check are logged."""
    for _ in range(3):
        check(client, auth, customer_id, "marketing.sms")
    hub.checklog.flush()
    with hub.sessions() as s:
        rows = s.scalars(select(ConsentCheck).where(ConsentCheck.customer_id == customer_id)).all()
        assert len(rows) == 3
        assert {(r.system, r.purpose, r.allowed, r.reason) for r in rows} == {
            ("test-admin", "marketing.sms", False, "not_granted")}
        logged = s.scalar(select(func.count()).select_from(ConsentCheck))
    actions = [e["action"] for e in client.get("/api/v1/audit?action=consent.checks_logged",
                                               headers=auth).json["items"]]
    assert actions and logged >= 3
