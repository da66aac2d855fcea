"""R-GATE-03: the gate's answer names the consent decision it rests on (its ledger event,
signed receipt, notice version and purpose version): single, batch and ``at=`` answers,
on SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid
from typing import Any

from flask.testing import FlaskClient

import audit
from audit.clock import rfc3339, utcnow
from consent import flags
from privacy_hub.client import CheckResult
from privacy_hub.db import transaction
from privacy_hub.hub import Hub

PURPOSE = "marketing.sms"
PROOF = ("event_id", "receipt_id", "notice_version", "purpose_version")
DPO = audit.Actor("staff", "dpo-1")


def publish(client: FlaskClient, auth: dict[str, str], version: str) -> None:
    resp = client.post("/api/v1/notices", json={"version": version, "language": "en",
                                                 "text": f"Privacy notice {version}."},
                       headers=auth)
    assert resp.status_code == 201, resp.json


def decide(client: FlaskClient, auth: dict[str, str], cid: str, granted: bool,
           notice: str | None = None, purpose: str = PURPOSE) -> dict[str, Any]:
    body: dict[str, Any] = {"purpose": purpose, "granted": granted}
    if notice is not None:
        body["notice_version"] = notice
    resp = client.post(f"/api/v1/customers/{cid}/consents", json=body, headers=auth)
    assert resp.status_code == 201, resp.json
    return dict(resp.json)


def check(client: FlaskClient, auth: dict[str, str], cid: str, purpose: str = PURPOSE,
          at: str | None = None) -> dict[str, Any]:
    query = f"customer_id={cid}&purpose={purpose}" + (f"&at={at}" if at else "")
    resp = client.get(f"/api/v1/consent-check?{query}", headers=auth)
    assert resp.status_code == 200, resp.json
    return dict(resp.json)


def batch(client: FlaskClient, auth: dict[str, str], ids: list[str],
          purpose: str = PURPOSE) -> list[dict[str, Any]]:
    resp = client.post("/api/v1/consent-check", json={"purpose": purpose, "customer_ids": ids},
                       headers=auth)
    assert resp.status_code == 200, resp.json
    return list(resp.json["results"])


def new_customer(client: FlaskClient, auth: dict[str, str], n: int) -> str:
    resp = client.post("/api/v1/customers", json={"email": f"proof{n}@example.org"},
                       headers=auth)
    assert resp.status_code == 201
    return str(resp.json["id"])


def latest_event(client: FlaskClient, auth: dict[str, str], cid: str) -> dict[str, Any]:
    history = client.get(f"/api/v1/customers/{cid}/consents/history", headers=auth).json
    return dict([e for e in history["items"] if e["purpose"] == PURPOSE][-1])


def test_check_names_the_event_receipt_and_notice_of_the_latest_decision(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str) -> None:
    """R-GATE-03: record/receipt id and notice version of the decision in force."""
    publish(client, auth, "2026-10")
    publish(client, auth, "2026-11")
    granted = decide(client, auth, customer_id, True, notice="2026-10")
    body = check(client, auth, customer_id)
    assert body["allowed"] is True and body["reason"] == "granted"
    assert body["event_id"] == granted["id"] and body["receipt_id"] == granted["receipt_id"]
    assert body["notice_version"] == "2026-10" and body["purpose_version"] == 1
    receipt = client.get(f"/api/v1/receipts/{body['receipt_id']}", headers=auth)
    assert receipt.status_code == 200

    withdrawn = decide(client, auth, customer_id, False, notice="2026-11")
    body = check(client, auth, customer_id)
    assert body["allowed"] is False and body["reason"] == "withdrawn"
    assert (body["event_id"], body["receipt_id"]) == (withdrawn["id"], withdrawn["receipt_id"])
    assert body["notice_version"] == "2026-11"
    latest = latest_event(client, auth, customer_id)
    assert (latest["id"], latest["receipt_id"], latest["notice_version"]) == (
        body["event_id"], body["receipt_id"], body["notice_version"])

    again = decide(client, auth, customer_id, True)  # no notice named this time
    body = check(client, auth, customer_id)
    assert body["event_id"] == again["id"] and body["notice_version"] is None


def test_answers_resting_on_no_consent_decision_name_none(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str,
        hub: Hub) -> None:
    """R-GATE-03: legal basis, unknown customer, no decision yet, restriction: all null."""
    def proof(body: dict[str, Any]) -> list[Any]:
        return [body[k] for k in PROOF]

    contract = check(client, auth, customer_id, "orders.fulfilment")
    assert contract["reason"] == "legal_basis" and proof(contract) == [None] * 4
    assert proof(check(client, auth, customer_id)) == [None] * 4  # not_granted, no decision
    unknown = check(client, auth, str(uuid.uuid4()))
    assert unknown["reason"] == "unknown_customer" and proof(unknown) == [None] * 4
    decide(client, auth, customer_id, True)
    assert check(client, auth, customer_id)["event_id"] is not None
    with transaction(hub.sessions) as s:
        flags.restrict(s, customer_id, ground="accuracy_contested", actor=DPO)
    restricted = check(client, auth, customer_id)
    assert restricted["reason"] == "restricted" and proof(restricted) == [None] * 4


def test_batch_answers_name_each_customers_own_event(
        client: FlaskClient, auth: dict[str, str], catalogue: None) -> None:
    """R-GATE-03: customers with the same decision still get their own event and receipt."""
    publish(client, auth, "2026-10")
    ids = [new_customer(client, auth, n) for n in range(4)]
    events = {cid: decide(client, auth, cid, True, notice="2026-10") for cid in ids[:3]}
    events[ids[2]] = decide(client, auth, ids[2], False)  # withdrawn, no notice
    stranger = str(uuid.uuid4())
    results = batch(client, auth, [*ids, stranger, "not-a-uuid", ids[0]])
    assert [r["customer_id"] for r in results] == [*ids, stranger, "not-a-uuid", ids[0]]
    for r in (results[0], results[1], results[6]):
        event = events[r["customer_id"]]
        assert r["allowed"] is True and r["reason"] == "granted"
        assert (r["event_id"], r["receipt_id"]) == (event["id"], event["receipt_id"])
        assert r["notice_version"] == "2026-10" and r["purpose_version"] == 1
    assert results[0]["event_id"] != results[1]["event_id"]
    withdrawn = results[2]
    assert withdrawn["reason"] == "withdrawn" and withdrawn["event_id"] == events[ids[2]]["id"]
    assert withdrawn["receipt_id"] == events[ids[2]]["receipt_id"]
    assert withdrawn["notice_version"] is None and withdrawn["purpose_version"] == 1
    for r in results[3:6]:  # no decision, unknown, not an id
        assert r["allowed"] is False and [r[k] for k in PROOF] == [None] * 4
    for r in batch(client, auth, ids, "orders.fulfilment"):
        assert r["reason"] == "legal_basis" and [r[k] for k in PROOF] == [None] * 4


def test_batch_answers_of_an_objecting_customer_name_the_event_only_where_it_decides(
        client: FlaskClient, auth: dict[str, str], catalogue: None, hub: Hub) -> None:
    """R-GATE-03: an objection to all direct marketing decides the SMS purpose (no event),
    not a consent purpose outside direct marketing (the customer's own event)."""
    cid = new_customer(client, auth, 9)
    decide(client, auth, cid, True)
    analytics = decide(client, auth, cid, True, purpose="analytics.behaviour")
    with transaction(hub.sessions) as s:
        flags.object_to(s, cid, purposes=None, actor=DPO)
    [sms] = batch(client, auth, [cid])
    assert sms["reason"] == "objected" and sms["event_id"] is None
    [other] = batch(client, auth, [cid], "analytics.behaviour")
    assert other["reason"] == "granted" and other["event_id"] == analytics["id"]
    assert other["receipt_id"] == analytics["receipt_id"]


def test_answer_at_a_past_time_names_the_event_then_in_force(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str) -> None:
    """R-GATE-03 with ``at=``: the decision that held then, not the latest."""
    publish(client, auth, "2026-10")
    granted = decide(client, auth, customer_id, True, notice="2026-10")
    time.sleep(0.01)
    between = rfc3339(utcnow())
    time.sleep(0.01)
    withdrawn = decide(client, auth, customer_id, False)
    then = check(client, auth, customer_id, at=between)
    assert then["reason"] == "granted" and then["event_id"] == granted["id"]
    assert then["receipt_id"] == granted["receipt_id"] and then["notice_version"] == "2026-10"
    assert then["purpose_version"] == 1
    now = check(client, auth, customer_id)
    assert now["event_id"] == withdrawn["id"] and now["notice_version"] is None
    before = check(client, auth, customer_id, at="2020-01-01T00:00:00Z")
    assert before["reason"] == "unknown_customer" and before["event_id"] is None


def test_the_openapi_document_describes_the_new_answer_fields(client: FlaskClient) -> None:
    """R-GATE-03: the served document names every field a check answers with."""
    schemas = client.get("/api/openapi.json").json["components"]["schemas"]
    for name in ("CheckResult", "BatchItem"):
        properties = schemas[name]["properties"]
        for field in PROOF:
            assert field in properties, (name, field)
            assert "R-GATE-03" in properties[field]["description"]
            assert properties[field].get("nullable") is True or "null" in str(
                properties[field].get("type"))


def test_the_python_client_reads_the_named_decision() -> None:
    """R-GATE-03: CheckResult carries what the hub names, and None where an answer (from
    an older hub) leaves it out."""
    event, receipt = str(uuid.uuid4()), str(uuid.uuid4())
    single = CheckResult.of_answer("c", PURPOSE, {
        "allowed": True, "reason": "granted", "legal_basis": "consent", "valid_until": None,
        "event_id": event, "receipt_id": receipt, "notice_version": "2026-10",
        "purpose_version": 2})
    assert (single.event_id, single.receipt_id, single.notice_version,
            single.purpose_version) == (event, receipt, "2026-10", 2)
    item = CheckResult.of_batch_item("c", PURPOSE, {"customer_id": "c", "allowed": False,
                                                     "reason": "legal_basis"})
    assert item.event_id is None and item.purpose_version is None and item.allowed is False
