"""Erasure after a withdrawal or an objection (R-ERASE-03), on SQLite and PostgreSQL:
the job is queued in the transaction of the withdrawal or the objection, and erases the
events of the purpose that nothing else covers; events another purpose still covers, or
of other purposes, stay."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

import audit
from audit.clock import utcnow
from audit.models import AuditEntry
from consent import purposes as registry
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from privacy_hub.jobs.follow_ups import EVENTS_ERASURE
from privacy_hub.jobs.outbox import OutboxJob
from privacy_hub.jobs.worker import Worker
from privacy_hub.vault.models import CustomerEvent
from tests.conftest import SEED_EMAIL

MAY_READ = ["email", "first_name", "locale"]


def grant(client: FlaskClient, auth: dict[str, str], cid: str, purpose: str,
          granted: bool = True) -> dict[str, Any]:
    resp = client.post(f"/api/v1/customers/{cid}/consents", headers=auth,
                       json={"purpose": purpose, "granted": granted})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.json  # type: ignore[no-any-return]


def send_events(client: FlaskClient, auth: dict[str, str], cid: str,
                per_purpose: dict[str, int]) -> None:
    events = [{"customer_id": cid, "type": "page_view", "purpose": purpose,
               "occurred_at": utcnow().isoformat(), "properties": {"page": f"/p/{i}"}}
              for purpose, n in per_purpose.items() for i in range(n)]
    resp = client.post("/api/v1/events", headers=auth, json={"events": events})
    assert resp.status_code == 200 and resp.json["dropped"] == 0, resp.json


def held(hub: Hub, cid: str) -> Counter[str]:
    with hub.sessions() as s:
        return Counter(s.scalars(select(CustomerEvent.purpose)
                                 .where(CustomerEvent.customer_id == cid)))


def erasure_jobs(hub: Hub, cid: str) -> int:
    with hub.sessions() as s:
        return len(s.scalars(select(OutboxJob.id).where(OutboxJob.kind == EVENTS_ERASURE,
                                                        OutboxJob.customer_id == cid)).all())


def erasure_entries(hub: Hub, cid: str) -> list[dict[str, Any]]:
    with hub.sessions() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.action == "events.erased",
                                                  AuditEntry.customer_id == cid)
                         .order_by(AuditEntry.seq))
        return [json.loads(e.details) for e in rows]


def run_jobs(hub: Hub) -> None:
    Worker(hub).run_once()


def test_a_withdrawal_erases_only_the_events_of_that_purpose(
        client: FlaskClient, auth: dict[str, str], hub: Hub, catalogue: None,
        customer_id: str) -> None:
    """R-ERASE-03: withdraw the only consent for the behaviour events: the job queued with
    the withdrawal purges them, audited with the count; the events of another consent
    and of a contract stay. A refusal of a consent never given queues nothing."""
    grant(client, auth, customer_id, "analytics.behaviour")
    grant(client, auth, customer_id, "personalisation.recommendations")
    send_events(client, auth, customer_id, {"analytics.behaviour": 3,
                                            "personalisation.recommendations": 2,
                                            "orders.fulfilment": 1})
    grant(client, auth, customer_id, "marketing.sms", granted=False)  # a refusal
    assert erasure_jobs(hub, customer_id) == 0
    assert grant(client, auth, customer_id, "analytics.behaviour", False)["status"] == \
        "withdrawn"
    assert erasure_jobs(hub, customer_id) == 1
    assert held(hub, customer_id)["analytics.behaviour"] == 3  # until the job runs
    run_jobs(hub)
    assert held(hub, customer_id) == Counter({"personalisation.recommendations": 2,
                                              "orders.fulfilment": 1})
    (entry,) = erasure_entries(hub, customer_id)
    assert entry == {"cause": "withdrawal", "count": 3,
                     "purposes": {"analytics.behaviour": 3}, "kept": {}}
    with hub.sessions() as s:
        details = " ".join(e.details for e in s.scalars(select(AuditEntry)))
    assert SEED_EMAIL not in details and "/p/1" not in details


def test_events_a_compatible_further_purpose_still_covers_are_kept(
        client: FlaskClient, auth: dict[str, str], hub: Hub, catalogue: None,
        customer_id: str) -> None:
    """R-ERASE-03: a purpose registered as compatible further processing of the withdrawn
    one (Art. 6(4)), which the gate still allows, keeps its events; once the customer
    objects to that one too, they go."""
    with transaction(hub.sessions) as s:
        registry.create(s, {
            "key": "analytics.product_quality", "title": "Product quality statistics",
            "description": "Which products disappoint, from behaviour already collected.",
            "legal_basis": "legitimate_interests", "lia_ref": "LIA-7",
            "source_purpose": "analytics.behaviour", "compatibility_ref": "CA-3",
            "fields": [], "retention_days": 365, "data_categories": ["usage"]},
            actor=audit.Actor("cli", "tests"), allowed_fields=MAY_READ)
    grant(client, auth, customer_id, "analytics.behaviour")
    send_events(client, auth, customer_id, {"analytics.behaviour": 2})
    grant(client, auth, customer_id, "analytics.behaviour", False)
    run_jobs(hub)
    assert held(hub, customer_id) == Counter({"analytics.behaviour": 2})
    assert erasure_entries(hub, customer_id)[-1] == {
        "cause": "withdrawal", "count": 0, "purposes": {},
        "kept": {"analytics.behaviour": "analytics.product_quality"}}

    resp = client.post("/api/v1/requests", headers=auth, json={
        "type": "objection", "customer_id": customer_id,
        "details": {"purposes": ["analytics.product_quality", "analytics.behaviour"]},
        "identity_verified": True, "verification_method": "signed_letter"})
    assert resp.status_code == 201, resp.json
    run_jobs(hub)
    assert held(hub, customer_id) == Counter()
    assert erasure_entries(hub, customer_id)[-1]["purposes"] == {"analytics.behaviour": 2}


def test_an_objection_to_direct_marketing_erases_the_marketing_events(
        client: FlaskClient, auth: dict[str, str], hub: Hub, catalogue: None,
        customer_id: str) -> None:
    """R-ERASE-03, Art. 21(3): an objection naming no purpose stops all direct marketing
    at once (before verification): the events of every direct-marketing purpose are
    erased, the others kept."""
    grant(client, auth, customer_id, "marketing.sms")
    grant(client, auth, customer_id, "analytics.behaviour")
    send_events(client, auth, customer_id, {"marketing.sms": 2, "analytics.behaviour": 1})
    resp = client.post("/api/v1/requests", headers=auth,
                       json={"type": "objection", "customer_id": customer_id})
    assert resp.status_code == 201 and resp.json["status"] == "pending_verification"
    run_jobs(hub)
    assert held(hub, customer_id) == Counter({"analytics.behaviour": 1})
    entry = erasure_entries(hub, customer_id)[-1]
    assert entry["cause"] == "objection" and entry["purposes"] == {"marketing.sms": 2}


def test_an_upheld_objection_to_a_legitimate_interest_erases_its_events(
        client: FlaskClient, auth: dict[str, str], hub: Hub, catalogue: None,
        customer_id: str) -> None:
    """R-ERASE-03, Art. 21(1): the objection takes effect when verified, and then the
    events of that purpose go; while the request waits for verification they stay."""
    send_events(client, auth, customer_id, {"fraud_prevention": 2, "orders.fulfilment": 1})
    resp = client.post("/api/v1/requests", headers=auth, json={
        "type": "objection", "customer_id": customer_id,
        "details": {"purposes": ["fraud_prevention"]}})
    assert resp.status_code == 201
    run_jobs(hub)
    assert held(hub, customer_id)["fraud_prevention"] == 2
    with transaction(hub.sessions) as s:
        from privacy_hub.rights.adapters import requests_service

        requests_service(hub).verify(s, resp.json["id"], method="signed_letter",
                                     actor=audit.Actor("staff", "dpo-1"))
    run_jobs(hub)
    assert held(hub, customer_id) == Counter({"orders.fulfilment": 1})


@pytest.mark.parametrize("restricted", [True, False])
def test_nothing_is_erased_while_processing_is_restricted(
        client: FlaskClient, auth: dict[str, str], hub: Hub, catalogue: None,
        customer_id: str, restricted: bool) -> None:
    """R-ERASE-03 with Art. 18: a restricted customer's data are only stored, so the
    withdrawal's erasure is deferred (audited), not carried out."""
    grant(client, auth, customer_id, "analytics.behaviour")
    send_events(client, auth, customer_id, {"analytics.behaviour": 2})
    if restricted:
        resp = client.post("/api/v1/requests", headers=auth, json={
            "type": "restriction", "customer_id": customer_id,
            "details": {"ground": "legal_claims"}, "identity_verified": True,
            "verification_method": "signed_letter"})
        assert resp.status_code == 201, resp.json
    grant(client, auth, customer_id, "analytics.behaviour", False)
    run_jobs(hub)
    assert held(hub, customer_id)["analytics.behaviour"] == (2 if restricted else 0)
    with hub.sessions() as s:
        deferred = s.scalars(select(AuditEntry.seq).where(
            AuditEntry.action == "events.erasure_deferred",
            AuditEntry.customer_id == customer_id)).all()
    assert len(deferred) == (1 if restricted else 0)
