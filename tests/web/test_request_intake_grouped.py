"""A request still to be verified is group-committed like a consent write (issue 14,
privacy_hub/rights/intake.py): the same rows, mails, reminders, audit entry, last
activity and answer as through the session, on SQLite and PostgreSQL (R-DSAR-02,
R-DSAR-05, R-DEAD-03, R-RET-02)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask.testing import FlaskClient
from sqlalchemy import select

from audit.models import AuditEntry
from dsar.models import DataSubjectRequest, RequestHistory, VerificationToken
from privacy_hub.hub import Hub
from privacy_hub.jobs.outbox import OutboxJob, open_payload
from privacy_hub.usecases import requests as usecase
from privacy_hub.vault.models import Customer
from tests.conftest import SEED_EMAIL

_SESSION_PATH = {"Idempotency-Key": "the-session-path"}  # a stored response needs the session


def _post(client: FlaskClient, auth: dict[str, str], extra: dict[str, str] | None = None,
          **body: Any) -> Any:
    return client.post("/api/v1/requests", json=body, headers={**auth, **(extra or {})})


def _no_session_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the session's path was taken")

    monkeypatch.setattr(usecase, "submit", refuse)


def _stored(hub: Hub, request_id: str) -> dict[str, Any]:
    """What a request left in the database, without ids and times of its own."""
    with hub.sessions() as session:
        aead = AESGCM(hub.keyring.hub_key(session, "app_secrets"))
        req = session.get(DataSubjectRequest, request_id)
        assert req is not None
        history = session.scalars(select(RequestHistory)
                                  .where(RequestHistory.request_id == request_id)).all()
        tokens = session.scalars(select(VerificationToken)
                                 .where(VerificationToken.request_id == request_id)).all()
        jobs = []
        for job in session.scalars(select(OutboxJob).order_by(OutboxJob.created_at,
                                                              OutboxJob.kind)):
            payload = open_payload(aead, job.id, job.payload_ct) if job.payload_ct else {}
            if request_id not in json.dumps(payload):
                continue
            payload.get("secrets", {}).pop("token", None)
            payload.get("data", {}).pop("request_id", None)
            payload.pop("request_id", None)
            if "due_at" in payload:  # a reminder's: the deadline to the microsecond
                payload["due_at"] = payload["due_at"][:10]
            jobs.append({"kind": job.kind, "status": job.status, "customer_id": job.customer_id,
                         "after_receipt": (job.next_attempt_at - req.received_at).days
                         if job.next_attempt_at else None, "payload": payload})
        entries = [(e.action, e.customer_id, json.loads(e.details)) for e in session.scalars(
            select(AuditEntry).where(AuditEntry.action == "request.received"))
            if json.loads(e.details).get("request_id") == request_id]
    return {
        "request": {k: getattr(req, k) for k in ("type", "status", "customer_id", "channel",
                                                 "extension_months", "details", "details_ct",
                                                 "contact_ct", "verified_at")},
        "due_days": (req.due_at - req.received_at).days,
        "history": [(h.from_status, h.to_status, h.event, h.actor_type, h.actor_id, h.note)
                    for h in history],
        "tokens": [(t.used_at, (t.expires_at - req.received_at).days) for t in tokens],
        "jobs": sorted(jobs, key=json.dumps),
        "audit": [(a, c, {k: v for k, v in d.items() if k != "request_id"})
                  for a, c, d in entries],
    }


def test_an_unverified_request_takes_the_group_commit_and_stores_what_the_session_would(
        client: FlaskClient, auth: dict[str, str], customer_id: str, hub: Hub,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """R-DSAR-02, R-DEAD-03: the grouped intake writes the same request, history line,
    token, verification mail, reminders and audit entry as the session's path."""
    through_session = _post(client, auth, _SESSION_PATH, type="access", customer_id=customer_id)
    assert through_session.status_code == 201
    _no_session_path(monkeypatch)
    grouped = _post(client, auth, type="access", customer_id=customer_id)
    assert grouped.status_code == 201
    assert set(grouped.json) == set(through_session.json)
    assert grouped.json["status"] == "pending_verification"
    assert grouped.json["extended"] is False
    assert grouped.json["due_at"][:10] == through_session.json["due_at"][:10]
    one, other = _stored(hub, through_session.json["id"]), _stored(hub, grouped.json["id"])
    assert one == other
    kinds = sorted(j["kind"] for j in other["jobs"])
    assert kinds == ["mail", "request_reminder", "request_reminder"]
    assert other["tokens"] == [(None, 7)]
    assert other["audit"] == [("request.received", customer_id,
                               {"type": "access", "channel": "api"})]
    # The answer is the request as it reads back.
    stored = client.get(f"/api/v1/requests/{grouped.json['id']}", headers=auth).json
    assert {k: stored[k] for k in grouped.json} == grouped.json


def test_the_emailed_link_of_a_grouped_request_verifies_it(
        client: FlaskClient, auth: dict[str, str], customer_id: str, hub: Hub,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """R-DSAR-03: the token in the queued mail is the one whose hash was stored."""
    from tests.web.test_requests_api import mails

    _no_session_path(monkeypatch)
    created = _post(client, auth, type="access", email=SEED_EMAIL.upper())
    assert created.status_code == 201
    mail = next(m for m in mails(hub) if m["template"] == "request_verification"
                and m["data"]["request_id"] == created.json["id"])
    assert mail["customer_id"] == customer_id
    token = mail["secrets"]["token"]
    verified = client.post(f"/api/v1/requests/{created.json['id']}/verify",
                           json={"token": token})
    assert verified.status_code == 200
    assert verified.json["status"] == "completed"  # no downstream system has a part
    again = client.post(f"/api/v1/requests/{created.json['id']}/verify", json={"token": token})
    assert again.status_code == 422  # single use


def test_an_unknown_email_is_told_nobody_is_known_and_the_request_closes_later(
        client: FlaskClient, auth: dict[str, str], customer_id: str, hub: Hub,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """R-DSAR-05, no enumeration: the same answer; the address's owner alone is told,
    the request closes within 30 days; the same rows as through the session."""
    through_session = _post(client, auth, _SESSION_PATH, type="erasure",
                            email="nobody-1@example.net")
    _no_session_path(monkeypatch)
    grouped = _post(client, auth, type="erasure", email="nobody-1@example.net")
    known = _post(client, auth, type="erasure", email=SEED_EMAIL)
    assert grouped.status_code == known.status_code == 201
    assert set(grouped.json) == set(known.json)
    assert grouped.json["status"] == known.json["status"] == "pending_verification"
    stored = _stored(hub, grouped.json["id"])
    assert stored == _stored(hub, through_session.json["id"])
    assert stored["request"]["customer_id"] is None and stored["tokens"] == []
    told = [j for j in stored["jobs"] if j["kind"] == "mail"]
    assert [j["payload"]["template"] for j in told] == ["request_no_account"]
    assert told[0]["payload"]["to_staff"] == "nobody-1@example.net"
    closes = [j for j in stored["jobs"] if j["kind"] == "request_unidentified"]
    # 30 days, never past the deadline (a month: 28 to 31 days)
    assert len(closes) == 1 and 27 <= closes[0]["after_receipt"] <= 30


def test_a_grouped_request_moves_the_customers_last_activity(
        client: FlaskClient, auth: dict[str, str], customer_id: str, hub: Hub,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """R-RET-02: a request of theirs is activity; a pending inactivity warning goes."""
    from privacy_hub.db import transaction

    with transaction(hub.sessions) as session:
        row = session.get(Customer, customer_id)
        assert row is not None
        row.last_active_at = datetime(2020, 1, 1, tzinfo=row.created_at.tzinfo)
        row.inactivity_notice_at = datetime(2021, 1, 1, tzinfo=row.created_at.tzinfo)
    _no_session_path(monkeypatch)
    created = _post(client, auth, type="portability", customer_id=customer_id)
    assert created.status_code == 201
    with hub.sessions() as session:
        row = session.get(Customer, customer_id)
        assert row is not None and row.last_active_at is not None
        assert row.last_active_at.year >= 2026 and row.inactivity_notice_at is None


def test_what_needs_the_session_still_takes_it(
        client: FlaskClient, auth: dict[str, str], customer_id: str, hub: Hub) -> None:
    """An erased or unknown customer id is refused (404) as before; an objection takes
    effect at once and a rectification's values are sealed, through the session."""
    import uuid

    unknown = _post(client, auth, type="access", customer_id=str(uuid.uuid4()))
    assert unknown.status_code == 404
    assert unknown.headers["Content-Type"].startswith("application/problem+json")
    objection = _post(client, auth, type="objection", customer_id=customer_id)
    assert objection.status_code == 201
    rectification = _post(client, auth, type="rectification", customer_id=customer_id,
                          details={"changes": {"first_name": "Grace"}})
    assert rectification.status_code == 201
    with hub.sessions() as session:
        req = session.get(DataSubjectRequest, rectification.json["id"])
        assert req is not None and req.details_ct is not None
        assert b"Grace" not in req.details_ct and "Grace" not in req.details


def test_a_grouped_request_keeps_the_email_out_of_the_audit_log_and_the_jobs_table(
        client: FlaskClient, auth: dict[str, str], customer_id: str, hub: Hub,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Personal data never in audit details or in clear in the outbox (DESIGN.md)."""
    _no_session_path(monkeypatch)
    assert _post(client, auth, type="access", email=SEED_EMAIL).status_code == 201
    assert _post(client, auth, type="access", email="nobody-2@example.net").status_code == 201
    with hub.sessions() as session:
        details = " ".join(session.scalars(select(AuditEntry.details)))
        payloads = b"".join(p for p in session.scalars(select(OutboxJob.payload_ct)) if p)
    for address in (SEED_EMAIL, "nobody-2@example.net"):
        assert address not in details
        assert address.encode() not in payloads
