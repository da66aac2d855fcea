"""R-CREC-03: consent events are chained into the audit log. Each event's audit entry holds
the event's hash, so ``audit verify`` (API and CLI) finds an edited event row, names its
audit entry and the event; an untouched ledger verifies. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text

import audit
from audit.models import AuditEntry
from consent import event_chain
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from privacy_hub.usecases.accountability import verify_audit_chain
from tests.conftest import SEED_EMAIL


def decide(client: FlaskClient, auth: dict[str, str], cid: str, purpose: str,
           granted: bool) -> dict[str, Any]:
    resp = client.post(f"/api/v1/customers/{cid}/consents",
                       json={"purpose": purpose, "granted": granted}, headers=auth)
    assert resp.status_code == 201, resp.json
    return dict(resp.json)


def verify(client: FlaskClient, auth: dict[str, str]) -> dict[str, Any]:
    resp = client.get("/api/v1/audit/verify", headers=auth)
    assert resp.status_code == 200
    return dict(resp.json)


def entry_seq_of(hub: Hub, event_id: str) -> int:
    with hub.sessions() as session:
        for entry in session.query(AuditEntry).filter(AuditEntry.action.like("consent.%")):
            if json.loads(entry.details).get("event_id") == event_id:
                return int(entry.seq)
    raise AssertionError("no audit entry names the event")


@pytest.fixture
def ledger(client: FlaskClient, auth: dict[str, str], catalogue: None,
           customer_id: str) -> list[dict[str, Any]]:
    """Four decisions: single ones and a batch."""
    events = [decide(client, auth, customer_id, "marketing.sms", True),
              decide(client, auth, customer_id, "marketing.sms", False)]
    resp = client.post(f"/api/v1/customers/{customer_id}/consents:batch", json={"decisions": [
        {"purpose": "analytics.behaviour", "granted": True},
        {"purpose": "marketing.email", "granted": False}]}, headers=auth)
    assert resp.status_code == 201, resp.json
    return events + list(resp.json["items"])


def test_an_untouched_ledger_verifies_with_every_event_checked(
        client: FlaskClient, auth: dict[str, str], ledger: list[dict[str, Any]]) -> None:
    """R-CREC-03: hash-chain verification returns OK and re-hashed every event."""
    report = verify(client, auth)
    assert report["ok"] is True and report["first_bad_seq"] is None, report["problem"]
    assert report["consent_events"] == {"checked": len(ledger), "unhashed": 0, "missing": 0}


@pytest.mark.parametrize(("column", "value"), [
    ("granted", True), ("status", "granted"), ("notice_version", "1999-01"),
    ("evidence_sha256", "0" * 64), ("purpose_version", 7),
    ("recorded_at", "2020-01-01 00:00:00"), ("source", "forged")])
def test_editing_one_stored_event_row_fails_verification_at_its_audit_entry(
        client: FlaskClient, auth: dict[str, str], hub: Hub, ledger: list[dict[str, Any]],
        column: str, value: object) -> None:
    """R-CREC-03 (grey box): altering one stored row makes verification fail, naming the
    event's audit entry and the event."""
    withdrawal = ledger[1]
    with transaction(hub.sessions) as session:
        changed = session.execute(text(f"UPDATE consent_events SET {column} = :v "  # noqa: S608
                                       "WHERE id = :id"), {"v": value, "id": withdrawal["id"]})
        assert changed.rowcount == 1  # type: ignore[attr-defined]
    report = verify(client, auth)
    assert report["ok"] is False
    assert report["first_bad_seq"] == entry_seq_of(hub, withdrawal["id"])
    assert withdrawal["id"] in report["problem"] and SEED_EMAIL not in report["problem"]


def test_the_cli_reports_an_edited_event(hub: Hub, ledger: list[dict[str, Any]]) -> None:
    """R-CREC-03: ``privacy-hub audit verify`` uses the same verification (its use case)."""
    with hub.sessions() as session:
        assert verify_audit_chain(hub, session)["ok"] is True
    with transaction(hub.sessions) as session:
        session.execute(text("UPDATE consent_events SET collection_method = 'forged' "
                             "WHERE id = :id"), {"id": ledger[0]["id"]})
    with hub.sessions() as session:
        report = verify_audit_chain(hub, session)
    assert report["ok"] is False and report["first_bad_seq"] == entry_seq_of(hub, ledger[0]["id"])


def test_deleted_event_rows_are_counted_not_taken_for_tampering(
        client: FlaskClient, auth: dict[str, str], hub: Hub,
        ledger: list[dict[str, Any]]) -> None:
    """R-CREC-03 beside retention: rows deleted whole (an erased customer's, audited) are
    not a break; the events left are still checked."""
    with transaction(hub.sessions) as session:
        session.execute(text("DELETE FROM consent_events WHERE id = :id"), {"id": ledger[0]["id"]})
    report = verify(client, auth)
    assert report["ok"] is True, report["problem"]
    assert report["consent_events"] == {"checked": len(ledger) - 1, "unhashed": 0, "missing": 1}


def test_entries_written_before_hashing_are_skipped_and_counted(
        client: FlaskClient, auth: dict[str, str], hub: Hub,
        ledger: list[dict[str, Any]]) -> None:
    """R-CREC-03: an event's entry from before the hash was chained is counted, not failed."""
    with transaction(hub.sessions) as session:
        audit.record(session, actor=audit.Actor("cli", "tests"), action="consent.grant",
                     customer_id=str(uuid.uuid4()),
                     details={"purpose": "marketing.sms", "event_id": str(uuid.uuid4())})
    report = verify(client, auth)
    assert report["ok"] is True
    assert report["consent_events"] == {"checked": len(ledger), "unhashed": 1, "missing": 0}


def test_verification_streams_the_log_in_batches(hub: Hub, ledger: list[dict[str, Any]]) -> None:
    """R-CREC-03: the same answer whatever the batch size (large ledgers, flat memory)."""
    with transaction(hub.sessions) as session:
        session.execute(text("UPDATE consent_events SET source = 'forged' WHERE id = :id"),
                        {"id": ledger[3]["id"]})
    seq = entry_seq_of(hub, ledger[3]["id"])
    with hub.sessions() as session:
        for size in (1, 2, 3, 1000):
            report = event_chain.verify_events(session, batch_size=size)
            assert (report.ok, report.first_bad_seq, report.checked) == (False, seq, 3)
