"""`POST /customers/{id}/consents:batch` (API.md "Consent"): applied atomically, or a 422
naming every bad decision by its index, whatever made it bad, and nothing recorded
(R-CREC-03: the ledger holds only what was decided)."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select

from audit.models import AuditEntry
from consent.models import ConsentEvent, ConsentState, Receipt
from privacy_hub.hub import Hub
from privacy_hub.jobs.outbox import OutboxJob
from tests.conftest import SEED_EMAIL


def _counts(hub: Hub) -> dict[str, int]:
    with hub.sessions() as session:
        return {model.__name__: int(session.scalar(select(func.count()).select_from(model)) or 0)
                for model in (ConsentEvent, ConsentState, Receipt, AuditEntry, OutboxJob)}


def _batch(client: FlaskClient, auth: dict[str, str], cid: str, decisions: Any) -> Any:
    return client.post(f"/api/v1/customers/{cid}/consents:batch",
                       json={"decisions": decisions}, headers=auth)


def test_a_bad_batch_names_every_bad_decision_and_records_nothing(
        client: FlaskClient, auth: dict[str, str], hub: Hub, catalogue: None,
        customer_id: str) -> None:
    """Schema errors and the domain's errors together, each under its index; no ledger
    event, state, receipt, audit entry or webhook is written."""
    before = _counts(hub)
    resp = _batch(client, auth, customer_id, [
        {"purpose": "orders.fulfilment", "granted": True},          # 0: basis is contract
        {"purpose": "marketing.sms"},                               # 1: no granted
        {"purpose": "no.such.purpose", "granted": True},            # 2: unknown purpose
        {"purpose": "analytics.behaviour", "granted": True},        # 3: fine
        {"purpose": "customer_service"},                            # 4: both at once
        {"purpose": "marketing.sms", "granted": True, "colour": 1},  # 5: unknown field
        "marketing.sms",                                            # 6: not an object
        {"purpose": "marketing.sms", "granted": True,
         "notice_version": "1999-01"},                              # 7: no such notice
        {"purpose": "nope", "granted": "perhaps"},                  # 8: both, two fields
    ])
    assert resp.status_code == 422, resp.json
    assert resp.content_type == "application/problem+json"
    errors = resp.json["errors"]
    assert set(errors) == {
        "decisions.0.purpose", "decisions.1.granted", "decisions.2.purpose",
        "decisions.4.granted", "decisions.4.purpose", "decisions.5.colour", "decisions.6",
        "decisions.7.notice_version", "decisions.8.granted", "decisions.8.purpose"}
    assert "legal basis" in " ".join(errors["decisions.0.purpose"])
    assert "legal basis" in " ".join(errors["decisions.4.purpose"])
    assert errors["decisions.2.purpose"] == ["no such purpose"]
    assert all(isinstance(m, list) and m for m in errors.values())
    assert _counts(hub) == before
    states = client.get(f"/api/v1/customers/{customer_id}/consents?limit=1000",
                        headers=auth).json["items"]
    assert {s["purpose"]: s["status"] for s in states}["analytics.behaviour"] == "not_set"
    assert SEED_EMAIL not in resp.get_data(as_text=True)


def test_a_batch_of_one_bad_decision_names_its_index(
        client: FlaskClient, auth: dict[str, str], hub: Hub, catalogue: None,
        customer_id: str) -> None:
    before = _counts(hub)
    resp = _batch(client, auth, customer_id, [{"purpose": "orders.fulfilment", "granted": True}])
    assert resp.status_code == 422 and list(resp.json["errors"]) == ["decisions.0.purpose"]
    assert _counts(hub) == before


def test_the_batch_shape_is_checked_before_its_decisions(
        client: FlaskClient, auth: dict[str, str], hub: Hub, catalogue: None,
        customer_id: str) -> None:
    """No decisions, too many, not a list, or an unknown field beside them: 422 naming it."""
    before = _counts(hub)
    one = {"purpose": "marketing.sms", "granted": True}
    for body, field in (({"decisions": []}, "decisions"), ({"decisions": [one] * 101}, "decisions"),
                        ({"decisions": one}, "decisions"), ({}, "decisions"),
                        ({"decisions": [one], "extra": 1}, "extra")):
        resp = client.post(f"/api/v1/customers/{customer_id}/consents:batch", json=body,
                           headers=auth)
        assert resp.status_code == 422 and list(resp.json["errors"]) == [field], body
    assert _counts(hub) == before


def test_a_good_batch_records_every_decision(
        client: FlaskClient, auth: dict[str, str], hub: Hub, catalogue: None,
        customer_id: str) -> None:
    before = _counts(hub)
    resp = _batch(client, auth, customer_id, [
        {"purpose": "marketing.sms", "granted": True, "source": "checkout"},
        {"purpose": "analytics.behaviour", "granted": False}])
    assert resp.status_code == 201, resp.json
    assert [(i["purpose"], i["status"]) for i in resp.json["items"]] == [
        ("marketing.sms", "granted"), ("analytics.behaviour", "refused")]
    after = _counts(hub)
    assert after["ConsentEvent"] == before["ConsentEvent"] + 2
    assert after["Receipt"] == before["Receipt"] + 2
    assert after["AuditEntry"] >= before["AuditEntry"] + 2


def test_a_purpose_the_system_may_not_use_is_403_even_in_a_bad_batch(
        client: FlaskClient, auth: dict[str, str], hub: Hub, catalogue: None,
        customer_id: str) -> None:
    """A system limited to purposes records nothing for another (403), bad batch or not."""
    made = client.post("/api/v1/systems", json={
        "name": "sms-only", "scopes": ["consents:write"], "purposes": ["marketing.sms"]},
        headers=auth)
    limited = {"Authorization": f"Bearer {made.json['api_key']}"}
    before = _counts(hub)
    resp = _batch(client, limited, customer_id, [{"purpose": "marketing.sms"},
                                                 {"purpose": "analytics.behaviour"}])
    assert resp.status_code == 403
    assert _counts(hub) == before
