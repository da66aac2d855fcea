"""Data subject requests through the API (API.md "Data subject requests"; R-DSAR, R-DEAD, R-RRO)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask.testing import FlaskClient
from sqlalchemy import select

from privacy_hub.hub import Hub
from privacy_hub.jobs.outbox import OutboxJob, open_payload
from tests.conftest import SEED_EMAIL
from tests.web.conftest import new_key


def mails(hub: Hub) -> list[dict[str, Any]]:
    with hub.sessions() as session:
        aead = AESGCM(hub.keyring.hub_key(session, "app_secrets"))
        return [open_payload(aead, j.id, j.payload_ct) for j in session.scalars(
            select(OutboxJob).where(OutboxJob.kind == "mail").order_by(OutboxJob.created_at))
            if j.payload_ct is not None]


def submit(client: FlaskClient, auth: dict[str, str], **body: Any) -> Any:
    return client.post("/api/v1/requests", json=body, headers=auth)


def test_request_is_acknowledged_with_a_one_month_deadline(
        client: FlaskClient, auth: dict[str, str], customer_id: str) -> None:
    """R-DSAR-02, R-DEAD-01."""
    resp = submit(client, auth, type="access", email=SEED_EMAIL)
    assert resp.status_code == 201
    body = resp.json
    assert set(body) == {"id", "type", "status", "received_at", "due_at", "extended"}
    assert body["status"] == "pending_verification" and body["extended"] is False
    received = datetime.fromisoformat(body["received_at"])
    due = datetime.fromisoformat(body["due_at"])
    assert 28 <= (due - received).days <= 31


def test_unknown_email_gets_the_same_answer(client: FlaskClient, auth: dict[str, str],
                                            customer_id: str) -> None:
    """No account enumeration: a known and an unknown email look alike."""
    known = submit(client, auth, type="erasure", email=SEED_EMAIL).json
    unknown = submit(client, auth, type="erasure", email="nobody@example.net").json
    assert set(known) == set(unknown)
    assert known["status"] == unknown["status"] == "pending_verification"


def test_a_customer_signed_in_to_the_portal_counts_as_verified(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str,
        hub: Hub) -> None:
    """Issue 4, Identity: the portal's path (Requests.submit_signed_in) needs no emailed
    link; the request is verified at once, by the customer, on their own record."""
    from dsar.models import RequestHistory
    from privacy_hub.db import transaction
    from privacy_hub.rights.adapters import requests_service

    with transaction(hub.sessions) as session:
        req = requests_service(hub).submit_signed_in(
            session, customer_id=customer_id, type="restriction",
            details={"ground": "unlawful_processing"})
        rid = req.id
    body = client.get(f"/api/v1/requests/{rid}", headers=auth).json
    assert body["status"] == "completed" and body["channel"] == "portal"
    assert body["verification_method"] == "portal_session"
    assert not [m for m in mails(hub) if m["template"] == "request_verification"]
    with hub.sessions() as session:
        actors = {(h.event, h.actor_type, h.actor_id) for h in session.scalars(
            select(RequestHistory).where(RequestHistory.request_id == rid))}
    assert ("verified", "customer", customer_id) in actors
    check = client.get("/api/v1/consent-check", query_string={
        "customer_id": customer_id, "purpose": "orders.fulfilment"}, headers=auth)
    assert check.json["allowed"] is False and check.json["reason"] == "restricted"


def test_emailed_link_verifies_once(client: FlaskClient, auth: dict[str, str], customer_id: str,
                                    hub: Hub) -> None:
    """R-DSAR-03: a signed, single-use link proves control of the address."""
    rid = submit(client, auth, type="restriction", email=SEED_EMAIL,
                 details={"ground": "accuracy_contested"}).json["id"]
    (mail,) = [m for m in mails(hub) if m["template"] == "request_verification"]
    assert mail["customer_id"] == customer_id and mail["to_staff"] is None
    token = mail["secrets"]["token"]
    assert client.post(f"/api/v1/requests/{rid}/verify", json={"token": "x" * 43}).status_code == 422
    ok = client.post(f"/api/v1/requests/{rid}/verify", json={"token": token})
    assert ok.status_code == 200 and ok.json["verification_method"] == "email_link"
    assert client.post(f"/api/v1/requests/{rid}/verify", json={"token": token}).status_code == 422
    check = client.get(f"/api/v1/consent-check?customer_id={customer_id}&purpose=x", headers=auth)
    assert check.status_code == 404  # no such purpose; the restriction itself is tested below


def test_restriction_needs_a_ground_and_takes_effect_when_verified(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str) -> None:
    """R-GATE-06: Art. 18(1) ground required; the gate denies once verified."""
    missing = submit(client, auth, type="restriction", customer_id=customer_id)
    assert missing.status_code == 422 and "details.ground" in missing.json["errors"]
    rid = submit(client, auth, type="restriction", customer_id=customer_id, identity_verified=True,
                 verification_method="signed_in", details={"ground": "legal_claims"}).json["id"]
    got = client.get(f"/api/v1/requests/{rid}", headers=auth).json
    assert got["status"] == "completed"
    assert [h["event"] for h in got["history"]] == ["received", "verified", "processing", "completed"]
    gate = client.get(f"/api/v1/consent-check?customer_id={customer_id}&purpose=orders.fulfilment",
                      headers=auth).json
    assert gate["reason"] == "restricted"


def test_objection_to_direct_marketing_applies_at_once(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str) -> None:
    """Art. 21(3): before verification, direct marketing stops."""
    client.post(f"/api/v1/customers/{customer_id}/consents",
                json={"purpose": "marketing.sms", "granted": True}, headers=auth)
    resp = submit(client, auth, type="objection", customer_id=customer_id)
    assert resp.json["status"] == "pending_verification"
    gate = client.get(f"/api/v1/consent-check?customer_id={customer_id}&purpose=marketing.sms",
                      headers=auth).json
    assert gate["reason"] == "objected"


def test_rectification_changes_the_vault_when_verified(
        client: FlaskClient, auth: dict[str, str], customer_id: str, hub: Hub) -> None:
    """R-RRO-01: the change lands in the vault; the request stores no value in clear."""
    bad = submit(client, auth, type="rectification", customer_id=customer_id,
                 details={"changes": {"birth_date": "not a date"}})
    assert bad.status_code == 422 and "details.changes.birth_date" in bad.json["errors"]
    rid = submit(client, auth, type="rectification", customer_id=customer_id,
                 details={"changes": {"last_name": "Byron-King"}}).json["id"]
    assert client.get(f"/api/v1/customers/{customer_id}", headers=auth).json["last_name"] is None
    dpo = client.post(f"/api/v1/requests/{rid}/verify", json={"method": "id_document_seen"},
                      headers=auth)
    assert dpo.status_code == 200 and dpo.json["status"] == "completed"
    assert dpo.json["details"] == {"fields": ["last_name"]}
    assert client.get(f"/api/v1/customers/{customer_id}", headers=auth).json["last_name"] == "Byron-King"
    from dsar.models import DataSubjectRequest

    with hub.sessions() as session:
        row = session.get(DataSubjectRequest, rid)
        assert row is not None and b"Byron" not in (row.details_ct or b"") and "Byron" not in row.details


def test_extend_at_most_two_months_with_a_reason_the_subject_is_told(
        client: FlaskClient, auth: dict[str, str], customer_id: str, hub: Hub) -> None:
    """R-DEAD-02."""
    rid = submit(client, auth, type="access", customer_id=customer_id).json["id"]
    assert client.post(f"/api/v1/requests/{rid}/extend", json={"months": 1},
                       headers=auth).status_code == 422
    first = client.post(f"/api/v1/requests/{rid}/extend",
                        json={"months": 1, "reason": "many systems hold your data"}, headers=auth)
    assert first.status_code == 200 and first.json["extended"] is True
    received = datetime.fromisoformat(first.json["received_at"])
    assert datetime.fromisoformat(first.json["due_at"]) > received + timedelta(days=55)
    too_much = client.post(f"/api/v1/requests/{rid}/extend", json={"months": 2, "reason": "r"},
                           headers=auth)
    assert too_much.status_code == 409
    assert any(m["template"] == "request_extended" for m in mails(hub))


def test_reject_needs_a_reason_and_tells_the_subject(
        client: FlaskClient, auth: dict[str, str], customer_id: str, hub: Hub) -> None:
    """R-DSAR-07."""
    rid = submit(client, auth, type="erasure", customer_id=customer_id).json["id"]
    assert client.post(f"/api/v1/requests/{rid}/reject", json={"reason": ""},
                       headers=auth).status_code == 422
    done = client.post(f"/api/v1/requests/{rid}/reject",
                       json={"reason": "manifestly unfounded"}, headers=auth)
    assert done.json["status"] == "rejected"
    assert client.post(f"/api/v1/requests/{rid}/cancel", json={}, headers=auth).status_code == 409
    (mail,) = [m for m in mails(hub) if m["template"] == "request_rejected"]
    assert mail["data"]["reason"] == "manifestly unfounded"


def test_list_filters_and_overdue(client: FlaskClient, auth: dict[str, str], customer_id: str) -> None:
    """R-DEAD-03: overdue requests are flagged."""
    old = datetime.now(UTC) - timedelta(days=40)
    late = submit(client, auth, type="access", customer_id=customer_id,
                  received_at=old.isoformat()).json["id"]
    submit(client, auth, type="erasure", customer_id=customer_id)
    overdue = client.get("/api/v1/requests?overdue=true", headers=auth).json["items"]
    assert [r["id"] for r in overdue] == [late] and overdue[0]["overdue"] is True
    erasures = client.get("/api/v1/requests?type=erasure", headers=auth).json["items"]
    assert len(erasures) == 1
    page = client.get("/api/v1/requests?limit=1", headers=auth).json
    assert len(page["items"]) == 1 and page["next_cursor"]
    rest = client.get(f"/api/v1/requests?limit=1&cursor={page['next_cursor']}", headers=auth).json
    assert rest["items"][0]["id"] != page["items"][0]["id"]


def test_verified_and_receipt_date_need_manage_scope(client: FlaskClient, hub: Hub,
                                                     customer_id: str) -> None:
    desk = {"Authorization": "Bearer " + new_key(hub, "service-desk", ["requests:write"])}
    assert submit(client, desk, type="access", customer_id=customer_id).status_code == 201
    assert submit(client, desk, type="access", customer_id=customer_id, identity_verified=True,
                  verification_method="x").status_code == 403
    assert submit(client, desk, type="access", email="a@b.de", customer_id=customer_id).status_code == 422


def test_request_data_never_leaks_the_email(client: FlaskClient, auth: dict[str, str],
                                            customer_id: str, hub: Hub) -> None:
    rid = submit(client, auth, type="access", email=SEED_EMAIL).json["id"]
    text = client.get(f"/api/v1/requests/{rid}", headers=auth).get_data(as_text=True)
    audit_text = client.get("/api/v1/audit?limit=1000", headers=auth).get_data(as_text=True)
    assert SEED_EMAIL not in text and SEED_EMAIL not in audit_text


def _erasure(client: FlaskClient, auth: dict[str, str], customer_id: str) -> dict[str, Any]:
    resp = submit(client, auth, type="erasure", customer_id=customer_id, identity_verified=True,
                  verification_method="signed_in")
    assert resp.status_code == 201
    return dict(client.get(f"/api/v1/requests/{resp.json['id']}", headers=auth).json)


def test_erasure_withdraws_denies_keeps_what_the_law_requires_and_shreds(
        client: FlaskClient, auth: dict[str, str], catalogue: None, hub: Hub) -> None:
    """R-ERASE-01/02/07: the hub's part of an erasure, with the reply saying what was kept."""
    cid = client.post("/api/v1/customers", json={
        "email": SEED_EMAIL, "first_name": "Ada", "last_name": "Lovelace",
        "address": {"city": "London", "country": "GB"}}, headers=auth).json["id"]
    client.post(f"/api/v1/customers/{cid}/consents",
                json={"purpose": "marketing.sms", "granted": True}, headers=auth)
    req = _erasure(client, auth, cid)
    assert req["status"] == "completed"  # no downstream system registered
    kept = req["outcome"]["kept"]
    assert [k["purpose"] for k in kept] == ["invoicing"]
    assert set(kept[0]["fields"]) == {"first_name", "last_name", "address"}
    assert kept[0]["legal_basis"] == "legal_obligation" and kept[0]["until"]
    assert req["outcome"]["withdrawn_consents"] == 1
    assert client.get(f"/api/v1/customers/{cid}", headers=auth).json["status"] == "erased"
    gate = client.get(f"/api/v1/consent-check?customer_id={cid}&purpose=invoicing", headers=auth).json
    assert gate["reason"] == "erased"
    history = client.get(f"/api/v1/customers/{cid}/consents/history", headers=auth).json["items"]
    assert history[-1]["status"] == "withdrawn" and history[-1]["collection_method"] == "erasure_request"
    audit_text = client.get(f"/api/v1/audit?customer_id={cid}&limit=1000",
                            headers=auth).get_data(as_text=True)
    assert SEED_EMAIL not in audit_text and "Lovelace" not in audit_text
    assert client.get("/api/v1/audit/verify", headers=auth).json["ok"] is True
    again = client.post("/api/v1/customers", json={"email": SEED_EMAIL}, headers=auth)
    assert again.status_code == 201 and again.json["id"] != cid


def test_retained_data_is_destroyed_when_the_hold_ends(
        client: FlaskClient, auth: dict[str, str], catalogue: None, hub: Hub) -> None:
    """R-ERASE-02: holds are released automatically at their end date."""
    import audit
    from privacy_hub.db import transaction
    from privacy_hub.vault.keystore import CustomerKey
    from privacy_hub.vault.models import RetainedRecord

    cid = client.post("/api/v1/customers", json={"email": SEED_EMAIL, "last_name": "Kept"},
                      headers=auth).json["id"]
    _erasure(client, auth, cid)
    with hub.sessions() as s:
        assert s.get(CustomerKey, (cid, "legal_retention")) is not None
        assert s.get(CustomerKey, (cid, "default")) is None
        record = s.scalars(select(RetainedRecord).where(RetainedRecord.customer_id == cid)).one()
        assert b"Kept" not in record.fields_ct
    later = datetime.now(UTC) + timedelta(days=3651)
    with transaction(hub.sessions) as s:
        assert hub.vault.purge_retained(s, later, actor=audit.Actor("job", "test")) == 1
    with hub.sessions() as s:
        assert s.get(CustomerKey, (cid, "legal_retention")) is None
        assert s.scalars(select(RetainedRecord)).all() == []


def test_erasure_waits_for_every_system_then_completes(
        client: FlaskClient, auth: dict[str, str], catalogue: None, hub: Hub) -> None:
    """Downstream systems are told with the identifiers, and report back."""
    newsletter = client.post("/api/v1/systems", json={
        "name": "newsletter", "scopes": ["consents:read"],
        "webhook_url": "http://127.0.0.1:9/hook"}, headers=auth).json
    client.post("/api/v1/systems", json={"name": "crm", "scopes": ["consents:read"],
                                         "webhook_url": "http://127.0.0.1:9/crm"}, headers=auth)
    cid = client.post("/api/v1/customers", json={"email": SEED_EMAIL}, headers=auth).json["id"]
    req = _erasure(client, auth, cid)
    assert req["status"] == "processing"
    assert {(s["system"], s["status"]) for s in req["systems"]} == {
        ("newsletter", "pending"), ("crm", "pending")}
    own = {"Authorization": f"Bearer {newsletter['api_key']}"}
    assert client.post(f"/api/v1/requests/{req['id']}/systems/crm", json={"status": "done"},
                       headers=own).status_code == 403
    done = client.post(f"/api/v1/requests/{req['id']}/systems/newsletter",
                       json={"status": "done"}, headers=own).json
    assert done["status"] == "processing"
    failed = client.post(f"/api/v1/requests/{req['id']}/systems/crm", json={"status": "failed"},
                         headers=auth).json
    assert failed["status"] == "processing"
    closed = client.post(f"/api/v1/requests/{req['id']}/complete",
                         json={"note": "crm copy deleted by hand"}, headers=auth).json
    assert closed["status"] == "completed"
    from privacy_hub.jobs.outbox import OutboxJob

    with hub.sessions() as s:
        erased = s.scalars(select(OutboxJob).where(OutboxJob.event_type == "customer.erased")).all()
        # both systems once, and crm again after it reported its part failed
        assert len({j.system_id for j in erased}) == 2 and len(erased) == 3
        aead = AESGCM(hub.keyring.hub_key(s, "app_secrets"))
        payload = open_payload(aead, erased[0].id, erased[0].payload_ct)  # type: ignore[arg-type]
    assert payload["data"]["identifiers"]["email"] == SEED_EMAIL.lower()


def test_a_system_that_reports_its_erasure_failed_is_sent_it_again_later_each_time(
        client: FlaskClient, auth: dict[str, str], catalogue: None, hub: Hub) -> None:
    """Issue 4, "retry failures": a failed part is sent again, with the identifiers the
    system matches on, although the customer's key is gone; the sealed copy of the
    identifiers goes when the request ends (R-ERASE-01)."""
    from dsar.models import DataSubjectRequest

    crm = client.post("/api/v1/systems", json={"name": "crm", "scopes": ["requests:read"],
                                               "webhook_url": "http://127.0.0.1:9/crm"},
                      headers=auth).json
    cid = client.post("/api/v1/customers", json={"email": SEED_EMAIL}, headers=auth).json["id"]
    req = _erasure(client, auth, cid)
    own = {"Authorization": f"Bearer {crm['api_key']}"}

    def resent() -> list[OutboxJob]:
        with hub.sessions() as s:
            return list(s.scalars(select(OutboxJob).where(
                OutboxJob.event_type == "customer.erased", OutboxJob.system_id == crm["id"])
                .order_by(OutboxJob.created_at)))

    assert len(resent()) == 1
    started = datetime.now(UTC)
    for attempt in (1, 2):
        answer = client.post(f"/api/v1/requests/{req['id']}/systems/crm",
                             json={"status": "failed"}, headers=own)
        assert answer.status_code == 200 and answer.json["status"] == "processing"
        jobs = resent()
        assert len(jobs) == 1 + attempt
    first, second = jobs[1], jobs[2]
    assert first.next_attempt_at is not None and second.next_attempt_at is not None
    base = hub.settings.webhook_backoff_base
    assert first.next_attempt_at >= started + timedelta(seconds=base * 0.99)
    assert second.next_attempt_at - first.next_attempt_at >= timedelta(seconds=base * 0.9)
    with hub.sessions() as s:
        aead = AESGCM(hub.keyring.hub_key(s, "app_secrets"))
        payload = open_payload(aead, second.id, second.payload_ct)  # type: ignore[arg-type]
        assert s.get(DataSubjectRequest, req["id"]).details_ct is not None  # type: ignore[union-attr]
    assert payload["type"] == "customer.erased"
    assert payload["data"]["identifiers"]["email"] == SEED_EMAIL.lower()
    assert payload["data"]["request_id"] == req["id"]
    done = client.post(f"/api/v1/requests/{req['id']}/systems/crm", json={"status": "done"},
                       headers=own).json
    assert done["status"] == "completed"
    assert len(resent()) == 3
    with hub.sessions() as s:
        assert s.get(DataSubjectRequest, req["id"]).details_ct is None  # type: ignore[union-attr]
    entries = client.get("/api/v1/audit", query_string={"action": "request.resent"},
                         headers=auth).json["items"]
    assert sorted(e["details"]["attempt"] for e in entries) == [1, 2]
    assert SEED_EMAIL.lower() not in str(entries)


def test_a_failed_part_of_an_access_request_is_asked_again(
        client: FlaskClient, auth: dict[str, str], customer_id: str, hub: Hub) -> None:
    crm = client.post("/api/v1/systems", json={"name": "crm", "scopes": ["requests:read"],
                                               "webhook_url": "http://127.0.0.1:9/crm"},
                      headers=auth).json
    body = submit(client, auth, type="access", customer_id=customer_id, identity_verified=True,
                  verification_method="signed_in").json
    own = {"Authorization": f"Bearer {crm['api_key']}"}
    client.post(f"/api/v1/requests/{body['id']}/systems/crm", json={"status": "failed"},
                headers=own)
    with hub.sessions() as s:
        jobs = s.scalars(select(OutboxJob).where(OutboxJob.event_type == "request.created",
                                                 OutboxJob.system_id == crm["id"])).all()
        aead = AESGCM(hub.keyring.hub_key(s, "app_secrets"))
        payloads = [open_payload(aead, j.id, j.payload_ct) for j in jobs]  # type: ignore[arg-type]
    assert len(payloads) == 2
    assert payloads[0]["data"] == payloads[1]["data"]
    assert payloads[1]["data"]["request_id"] == body["id"]


def test_dpo_reminders_are_scheduled_seven_days_before_and_at_the_deadline(
        client: FlaskClient, auth: dict[str, str], customer_id: str, hub: Hub) -> None:
    """R-DEAD-03: an alert a week before the due date, and one when it is overdue."""
    body = submit(client, auth, type="access", customer_id=customer_id).json
    due = datetime.fromisoformat(body["due_at"])
    with hub.sessions() as s:
        runs = sorted(j.next_attempt_at for j in s.scalars(
            select(OutboxJob).where(OutboxJob.kind == "request_reminder")))
    assert runs == [due - timedelta(days=7), due]


def test_reminder_job_mails_the_dpo_only_while_the_request_is_open(
        client: FlaskClient, auth: dict[str, str], customer_id: str, hub: Hub) -> None:
    from privacy_hub.jobs.retention import remind_dpo

    body = submit(client, auth, type="access", customer_id=customer_id).json
    dpo_hub = hub
    object.__setattr__(dpo_hub, "settings", hub.settings.with_(dpo_email="dpo@shop.example"))

    class _W:
        hub = dpo_hub

    remind_dpo(_W, None, {"request_id": body["id"], "due_at": body["due_at"].replace("Z", "+00:00")})  # type: ignore[arg-type]
    reminders = [m for m in mails(hub) if m["template"] == "deadline_reminder"]
    assert len(reminders) == 1 and reminders[0]["to_staff"] == "dpo@shop.example"
    client.post(f"/api/v1/requests/{body['id']}/cancel", json={}, headers=auth)
    remind_dpo(_W, None, {"request_id": body["id"], "due_at": body["due_at"].replace("Z", "+00:00")})  # type: ignore[arg-type]
    assert len([m for m in mails(hub) if m["template"] == "deadline_reminder"]) == 1


def test_intake_is_rate_limited_per_subject(client: FlaskClient, hub: Hub) -> None:
    from privacy_hub.api import requests as requests_api

    auth = {"Authorization": "Bearer " + new_key(hub, "service-desk", ["requests:write"])}
    codes = [submit(client, auth, type="access", email="flood@example.org").status_code
             for _ in range(requests_api.PER_EMAIL_PER_HOUR + 1)]
    assert codes[:-1] == [201] * requests_api.PER_EMAIL_PER_HOUR
    last = submit(client, auth, type="access", email="flood@example.org")
    assert last.status_code == 429 and int(last.headers["Retry-After"]) > 0
    assert "flood@example.org" not in last.get_data(as_text=True)


def test_subject_is_told_before_a_restriction_is_lifted(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str,
        hub: Hub) -> None:
    """R-RRO-02: the notification precedes the status change."""
    submit(client, auth, type="restriction", customer_id=customer_id, identity_verified=True,
           verification_method="signed_in", details={"ground": "accuracy_contested"})
    lifted = client.post(f"/api/v1/customers/{customer_id}/restriction/lift",
                         json={"note": "your address was checked and is correct"}, headers=auth)
    assert lifted.status_code == 200
    gate = client.get(f"/api/v1/consent-check?customer_id={customer_id}&purpose=orders.fulfilment",
                      headers=auth).json
    assert gate["allowed"] is True
    from consent.models import FlagEvent

    with hub.sessions() as s:
        mail_at = s.scalars(select(OutboxJob.created_at).where(
            OutboxJob.kind == "mail")).all()
        lifted_at = s.scalars(select(FlagEvent.recorded_at).where(
            FlagEvent.kind == "restriction_lifted")).one()
    assert any(t <= lifted_at for t in mail_at)
    assert any(m["template"] == "restriction_lifting" for m in mails(hub))
    assert client.post(f"/api/v1/customers/{customer_id}/restriction/lift", json={"note": "x"},
                       headers=auth).status_code == 409


def test_compelling_grounds_only_for_legitimate_interests(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str) -> None:
    """R-RRO-03, R-GATE-07: overriding needs a justification; never for direct marketing."""
    submit(client, auth, type="objection", customer_id=customer_id, identity_verified=True,
           verification_method="signed_in", details={"purposes": ["fraud_prevention", "marketing.sms"]})
    url = f"/api/v1/customers/{customer_id}/objections"
    assert client.post(f"{url}/fraud_prevention/grounds", json={"grounds": ""},
                       headers=auth).status_code == 422
    assert client.post(f"{url}/marketing.sms/grounds", json={"grounds": "we want to"},
                       headers=auth).status_code == 409
    ok = client.post(f"{url}/fraud_prevention/grounds",
                     json={"grounds": "chargeback investigation"}, headers=auth)
    assert ok.status_code == 200
    gate = client.get(f"/api/v1/consent-check?customer_id={customer_id}&purpose=fraud_prevention",
                      headers=auth).json
    assert gate["allowed"] is True


def test_the_acknowledgement_mail_carries_the_answers_facts_in_the_requests_language(
        client: FlaskClient, auth: dict[str, str], hub: Hub) -> None:
    """R-DSAR-02: the mail queued with the request holds the id, type, received and due
    dates of the answer, and the language the request was made in; a malformed language
    is 422."""
    resp = submit(client, auth, type="access", email="nobody@example.net", language="de-AT")
    assert resp.status_code == 201
    body = resp.json
    (mail,) = [m for m in mails(hub) if m["data"].get("request_id") == body["id"]]
    assert mail["template"] == "request_no_account"
    assert mail["data"]["request_type"] == "access"
    assert mail["data"]["received_at"] == body["received_at"][:10]
    assert mail["data"]["due_at"] == body["due_at"][:10]
    assert mail["data"]["fallback_locale"] == "de-AT"
    bad = submit(client, auth, type="access", email="nobody@example.net", language="<b>")
    assert bad.status_code == 422 and "language" in bad.json["errors"]
