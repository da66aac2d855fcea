"""A consent decision is group-committed (audit.Appender) with everything it writes: the
ledger event, the current state, the receipt, the audit entry and the outbox rows in one
transaction; the requests that need the session still take it."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask.testing import FlaskClient
from sqlalchemy import func, select

import audit
from audit.models import AuditEntry
from consent.ledger import Ledger
from consent.models import ConsentEvent, ConsentState, Receipt
from consent.receipts import verify
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from privacy_hub.jobs.outbox import OutboxJob, open_payload

ACTOR = audit.Actor("cli", "tests")


def record(client: FlaskClient, auth: dict[str, str], cid: str, **body: Any) -> Any:
    return client.post(f"/api/v1/customers/{cid}/consents", json=body, headers=auth)


def add_system(hub: Hub, name: str, url: str | None) -> str:
    with transaction(hub.sessions) as session:
        system, _, _ = hub.systems.create(session, name=name, scopes=["consents:read"],
                                          webhook_url=url, actor=ACTOR)
    return str(system.id)


@pytest.fixture
def no_session_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any decision recorded through the request's session."""
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("recorded through the session, not group-committed")

    monkeypatch.setattr(Ledger, "record", refuse)


def test_a_decision_writes_everything_in_one_group_commit(
        hub: Hub, client: FlaskClient, auth: dict[str, str], catalogue: None,
        customer_id: str, no_session_path: None) -> None:
    system_id = add_system(hub, "crm", "https://crm.example/hook")
    resp = record(client, auth, customer_id, purpose="marketing.sms", granted=True)
    assert resp.status_code == 201, resp.json
    body = resp.json
    assert body["status"] == "granted"
    again = record(client, auth, customer_id, purpose="marketing.sms", granted=False)
    assert again.status_code == 201 and again.json["status"] == "withdrawn"
    with hub.sessions() as session:
        event = session.get(ConsentEvent, body["id"])
        assert event is not None and event.receipt_id == body["receipt_id"]
        assert session.get(Receipt, body["receipt_id"]) is not None
        state = session.get(ConsentState, (customer_id, "marketing.sms"))
        assert state is not None and state.status == "withdrawn"
        assert state.last_event_id == again.json["id"]
        actions = session.scalars(select(AuditEntry.action)
                                  .where(AuditEntry.customer_id == customer_id)).all()
        assert "consent.grant" in actions and "consent.withdraw" in actions
        jobs = session.scalars(select(OutboxJob).where(OutboxJob.customer_id == customer_id,
                                                       OutboxJob.event_type == "consent.changed")
                               ).all()
        assert {j.system_id for j in jobs} == {system_id} and len(jobs) == 2
        report = audit.verify_chain(session, hub.audit_public_keys())
        assert report.ok, report
        aead = AESGCM(hub.keyring.hub_key(session, "app_secrets"))
        payload = open_payload(aead, jobs[0].id, jobs[0].payload_ct or b"")
        assert payload["type"] == "consent.changed"
        assert payload["data"]["event_id"] in {body["id"], again.json["id"]}
    got = client.get(f"/api/v1/receipts/{body['receipt_id']}", headers=auth).json
    jwks = client.get("/api/v1/keys/receipts").json
    assert verify(got["jws"], jwks)["iso27560"]["event_state"] == "granted"


def test_a_system_registered_before_a_write_gets_its_event(
        hub: Hub, client: FlaskClient, auth: dict[str, str], catalogue: None,
        customer_id: str, no_session_path: None) -> None:
    assert record(client, auth, customer_id, purpose="marketing.sms",
                  granted=True).status_code == 201
    system_id = add_system(hub, "late", "https://late.example/hook")
    assert record(client, auth, customer_id, purpose="marketing.sms",
                  granted=False).status_code == 201
    with hub.sessions() as session:
        got = session.scalar(select(func.count()).select_from(OutboxJob)
                             .where(OutboxJob.system_id == system_id))
    assert got == 1


def test_errors_are_answered_as_before_and_write_nothing(
        hub: Hub, client: FlaskClient, auth: dict[str, str], catalogue: None,
        customer_id: str, no_session_path: None) -> None:
    assert record(client, auth, customer_id, purpose="no.such", granted=True).status_code in (
        403, 404, 422)
    contract = record(client, auth, customer_id, purpose="orders.fulfilment", granted=True)
    assert contract.status_code == 422 and "purpose" in contract.json["errors"]
    future = record(client, auth, customer_id, purpose="marketing.sms", granted=True,
                    collected_at="2999-01-01T00:00:00Z")
    assert future.status_code == 422 and "collected_at" in future.json["errors"]
    with hub.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ConsentEvent)) == 0


def test_concurrent_decisions_share_commits_and_all_count(
        hub: Hub, client: FlaskClient, auth: dict[str, str], catalogue: None,
        customer_id: str, no_session_path: None) -> None:
    statuses: list[int] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        resp = record(client, auth, customer_id, purpose="marketing.sms", granted=i % 2 == 0)
        with lock:
            statuses.append(resp.status_code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [201] * 8
    with hub.sessions() as session:
        events = session.scalars(select(ConsentEvent).where(
            ConsentEvent.customer_id == customer_id)
            .order_by(ConsentEvent.recorded_at, ConsentEvent.id)).all()
        assert len(events) == 8
        assert len({e.recorded_at for e in events}) == 8
        state = session.get(ConsentState, (customer_id, "marketing.sms"))
        assert state is not None and state.last_event_id == events[-1].id
        assert audit.verify_chain(session, hub.audit_public_keys()).ok


def test_idempotency_gpc_and_double_opt_in_still_use_the_session(
        hub: Hub, client: FlaskClient, auth: dict[str, str], catalogue: None,
        customer_id: str) -> None:
    keyed = {**auth, "Idempotency-Key": "k-1"}
    first = client.post(f"/api/v1/customers/{customer_id}/consents", headers=keyed,
                        json={"purpose": "marketing.sms", "granted": True})
    replay = client.post(f"/api/v1/customers/{customer_id}/consents", headers=keyed,
                         json={"purpose": "marketing.sms", "granted": True})
    assert first.status_code == replay.status_code == 201
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json["id"] == first.json["id"]
    gpc = client.post(f"/api/v1/customers/{customer_id}/consents",
                      headers={**auth, "Sec-GPC": "1"},
                      json={"purpose": "marketing.sms", "granted": True})
    assert gpc.status_code == 201
    items = client.get(f"/api/v1/customers/{customer_id}/consents", headers=auth).json["items"]
    assert {i["purpose"]: i["status"] for i in items}["advertising.partners"] == "refused"
    pending = record(client, auth, customer_id, purpose="marketing.email", granted=True)
    assert pending.status_code == 201 and pending.json["status"] == "pending_confirmation"
    with hub.sessions() as session:
        mails = session.scalar(select(func.count()).select_from(OutboxJob)
                               .where(OutboxJob.kind == "mail"))
    assert mails == 1


def test_the_worker_is_woken_only_when_jobs_were_written(
        hub: Hub, client: FlaskClient, auth: dict[str, str], catalogue: None,
        customer_id: str, no_session_path: None) -> None:
    from privacy_hub.jobs.outbox import jobs_added

    jobs_added.clear()
    assert record(client, auth, customer_id, purpose="marketing.sms",
                  granted=True).status_code == 201
    assert not jobs_added.is_set()  # no subscriber: no job, no write lock for the worker
    add_system(hub, "crm", "https://crm.example/hook")
    assert record(client, auth, customer_id, purpose="marketing.sms",
                  granted=False).status_code == 201
    assert jobs_added.is_set()


def test_the_group_committed_answer_is_shaped_as_the_schema_dumps_it(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str) -> None:
    grouped = record(client, auth, customer_id, purpose="marketing.sms", granted=True)
    keyed = client.post(f"/api/v1/customers/{customer_id}/consents",
                        headers={**auth, "Idempotency-Key": "shape"},
                        json={"purpose": "marketing.sms", "granted": False})
    assert grouped.status_code == keyed.status_code == 201
    assert grouped.mimetype == keyed.mimetype == "application/json"
    assert {k: type(v) for k, v in grouped.json.items()} == {
        k: type(v) for k, v in keyed.json.items()}
