"""Proof of consent (R-CREC-06): evidence kept apart from the ledger, sealed under the
customer's key, purged a configured time after the consent ended, at once on erasure;
the chain, the receipts and the evidence pack still stand after."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from consent import proof
from consent.models import ConsentEvent, ConsentEvidence
from consent.receipts import verify
from privacy_hub.config import ConfigError, Settings
from privacy_hub.hub import Hub
from privacy_hub.jobs.worker import Worker
from privacy_hub.vault.errors import DecryptionError
from privacy_hub.vault.keystore import CustomerKey
from tests.conftest import SEED_EMAIL

AGENT = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0 proof-test"
EVIDENCE = {"ui_element": "checkout-sms-checkbox", "ui_version": "checkout-v7",
            "user_agent": AGENT}
DAY = timedelta(days=1)


def decide(client: FlaskClient, auth: dict[str, str], cid: str, purpose: str, granted: bool,
           **evidence: Any) -> dict[str, Any]:
    resp = client.post(f"/api/v1/customers/{cid}/consents", headers=auth, json={
        "purpose": purpose, "granted": granted, "collection_method": "web_form",
        "evidence": {**EVIDENCE, **evidence}})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.json  # type: ignore[no-any-return]


def history(client: FlaskClient, auth: dict[str, str], cid: str) -> list[dict[str, Any]]:
    resp = client.get(f"/api/v1/customers/{cid}/consents/history", headers=auth)
    assert resp.status_code == 200
    return resp.json["items"]  # type: ignore[no-any-return]


def audit_log(client: FlaskClient, auth: dict[str, str], **params: str) -> list[dict[str, Any]]:
    resp = client.get("/api/v1/audit", query_string={"limit": "1000", **params}, headers=auth)
    return resp.json["items"]  # type: ignore[no-any-return]


def housekeeping_at(hub: Hub, when: datetime) -> int:
    """The workers' retention housekeeping (the daily pass), run as if it were ``when``:
    how much evidence it purged."""
    counts = Worker(hub, clock=lambda: when).housekeeping()
    assert counts is not None, "the daily retention pass did not run"
    return counts["consent_evidence"]


def test_evidence_is_sealed_apart_under_the_customers_key_and_named_by_its_hash(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str,
        hub: Hub) -> None:
    """R-CREC-06: the ledger event holds only the SHA-256 of its evidence; the evidence is
    a ciphertext bound to its event and customer; the chained audit entry and the signed
    receipt name the same digest. Both the group-committed path (no address) and the
    session path (an address to hash) store it so."""
    hot = decide(client, auth, customer_id, "marketing.sms", True)
    cold = decide(client, auth, customer_id, "analytics.behaviour", True,
                  ip_address="203.0.113.7")
    events = {e["id"]: e for e in history(client, auth, customer_id)}
    with hub.sessions() as s:
        rows = {r.event_id: r for r in s.scalars(select(ConsentEvidence))}
    for recorded in (hot, cold):
        event = events[recorded["id"]]
        assert event["evidence"]["user_agent"] == AGENT
        digest = proof.sha256_of(proof.canonical(event["evidence"]))
        assert event["evidence_sha256"] == digest and event["evidence_purged_at"] is None
        row = rows[recorded["id"]]
        assert row.customer_id == customer_id and row.legacy_json is None
        assert row.evidence_ct is not None and AGENT.encode() not in row.evidence_ct
        receipt = client.get(f"/api/v1/receipts/{recorded['receipt_id']}", headers=auth).json
        jwks = client.get("/api/v1/keys/receipts").json
        assert verify(receipt["jws"], jwks)["iso27560"]["evidence_sha256"] == digest
        (entry,) = [e for e in audit_log(client, auth, customer_id=customer_id)
                    if e["details"].get("event_id") == recorded["id"]]
        assert entry["details"]["evidence_sha256"] == digest
    assert "ip_address" not in events[cold["id"]]["evidence"]
    # Bound to its cell: the ciphertext of one event does not open as another's.
    with hub.sessions() as s:
        key = hub.keyring.data_key(s, customer_id)
        with pytest.raises(DecryptionError):
            key.open(proof.TABLE, proof.COLUMN, cold["id"], rows[hot["id"]].evidence_ct or b"")
    with hub.sessions() as s:
        columns = ConsentEvent.__table__.columns.keys()
        assert "evidence" not in columns
        assert AGENT not in json.dumps([str(v) for e in s.scalars(select(ConsentEvent))
                                         for v in vars(e).values()])


def test_evidence_is_purged_after_the_retention_once_the_consent_ended(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str,
        hub: Hub) -> None:
    """R-CREC-06 acceptance: advance the clock beyond the configured end: the evidence of
    a withdrawn consent (and of its withdrawal) is purged, the purge is in the audit log
    (counts, no personal data), the chain and the receipts verify, and the evidence pack
    says "purged on <date>"; the evidence of a consent still in force is kept."""
    days = hub.settings.consent_proof_retention_days
    assert days == 3 * 365  # the default: the limitation period
    granted = decide(client, auth, customer_id, "marketing.sms", True)
    withdrawn = decide(client, auth, customer_id, "marketing.sms", False)
    in_force = decide(client, auth, customer_id, "analytics.behaviour", True)
    ended = datetime.fromisoformat(withdrawn["recorded_at"].replace("Z", "+00:00"))

    assert housekeeping_at(hub, ended + timedelta(days=days) - DAY) == 0
    assert all(e["evidence"] for e in history(client, auth, customer_id))

    later = ended + timedelta(days=days) + DAY
    assert housekeeping_at(hub, later) == 2
    assert housekeeping_at(hub, later + DAY) == 0  # nothing twice
    events = {e["id"]: e for e in history(client, auth, customer_id)}
    for gone in (granted, withdrawn):
        event = events[gone["id"]]
        assert event["evidence"] is None and event["evidence_purge_reason"] == "retention"
        assert event["evidence_purged_at"][:10] == later.date().isoformat()
        assert event["evidence_sha256"]
    assert events[in_force["id"]]["evidence"]["user_agent"] == AGENT
    with hub.sessions() as s:
        row = s.get(ConsentEvidence, granted["id"])
        assert row is not None and row.evidence_ct is None

    purges = audit_log(client, auth, action="consent.evidence_purged")
    assert [(p["customer_id"], p["details"]) for p in purges] == [
        (customer_id, {"purpose": "marketing.sms", "events": 2, "reason": "retention",
                       "retention_days": days})]
    assert SEED_EMAIL not in json.dumps(purges) and AGENT not in json.dumps(purges)
    verified = client.get("/api/v1/audit/verify", headers=auth).json
    assert verified["ok"] is True and verified["first_bad_seq"] is None

    pack = client.get(f"/api/v1/customers/{customer_id}/evidence",
                      query_string={"purpose": "marketing.sms"}, headers=auth).json
    assert all(r["verified"] for r in pack["receipts"]) and len(pack["receipts"]) == 2
    assert pack["audit_entries_verified"] is True
    for event in pack["consent_events"]:
        assert event["evidence"] is None
        assert event["evidence_note"] == (f"purged on {later.date().isoformat()} (its retention "
                                          "after the consent ended ran out)")
    assert pack["evidence_retention"]["retention_days"] == days
    assert (pack["evidence_retention"]["kept"], pack["evidence_retention"]["purged"]) == (0, 2)
    assert "consent.evidence_purged" in {e["action"] for e in pack["audit_entries"]}
    kept = client.get(f"/api/v1/customers/{customer_id}/evidence",
                      query_string={"purpose": "analytics.behaviour"}, headers=auth).json
    (event,) = kept["consent_events"]
    assert event["evidence_sha256_matches"] is True and event["evidence_note"] is None


def test_a_superseded_or_expired_consent_counts_from_its_end_and_a_configured_period(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str,
        hub: Hub) -> None:
    """R-CREC-06: a grant superseded by a later grant ends when superseded; a consent that
    expired ends at its expiry; the period is the configured one, not the default."""
    hub.settings = hub.settings.with_(consent_proof_retention_days=30)
    first = decide(client, auth, customer_id, "marketing.sms", True)
    second = decide(client, auth, customer_id, "marketing.sms", True)
    # personalisation.recommendations: a consent counts 365 days
    expiring = decide(client, auth, customer_id, "personalisation.recommendations", True)
    now = datetime.now(UTC)
    assert housekeeping_at(hub, now + timedelta(days=31)) == 1  # the superseded grant
    assert housekeeping_at(hub, now + timedelta(days=365 + 29)) == 0  # expired, within 30 days
    assert housekeeping_at(hub, now + timedelta(days=365 + 31)) == 1  # expired 31 days ago
    events = {e["id"]: e for e in history(client, auth, customer_id)}
    assert events[first["id"]]["evidence"] is None
    assert events[expiring["id"]]["evidence"] is None
    assert events[second["id"]]["evidence"] == EVIDENCE  # still in force: never purged
    assert client.get("/api/v1/audit/verify", headers=auth).json["ok"] is True


def test_erasure_purges_the_evidence_at_once(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str,
        hub: Hub) -> None:
    """R-CREC-06: erasure crypto-shreds the evidence (the customer's key goes) and drops
    its ciphertext in the same transaction, audited by counts."""
    recorded = decide(client, auth, customer_id, "marketing.sms", True)
    assert client.delete(f"/api/v1/customers/{customer_id}", headers=auth).status_code == 200
    with hub.sessions() as s:
        row = s.get(ConsentEvidence, recorded["id"])
        assert row is not None and row.evidence_ct is None and row.purge_reason == "erasure"
        assert s.get(CustomerKey, (customer_id, "default")) is None
    (event,) = [e for e in history(client, auth, customer_id) if e["id"] == recorded["id"]]
    assert event["evidence"] is None and event["evidence_purge_reason"] == "erasure"
    purges = audit_log(client, auth, action="consent.evidence_purged")
    assert [(p["customer_id"], p["details"]["reason"], p["details"]["events"])
            for p in purges] == [(customer_id, "erasure", 1)]
    assert client.get("/api/v1/audit/verify", headers=auth).json["ok"] is True


def test_the_records_of_processing_state_the_retention_of_consent_proof(
        client: FlaskClient, auth: dict[str, str], catalogue: None, hub: Hub) -> None:
    """R-CREC-06, Art. 30(1)(f): every consent-based activity says how long its proof is
    kept; other activities need no consent and say nothing of it."""
    hub.settings = hub.settings.with_(consent_proof_retention_days=400)
    ropa = client.get("/api/v1/ropa", headers=auth).json
    assert ropa["consent_proof_retention_days"] == 400
    for activity in ropa["activities"]:
        stated = activity["consent_proof_retention"]
        if activity["legal_basis"] == "consent":
            assert "400 days after it ended" in stated
        else:
            assert stated is None
    csv = client.get("/api/v1/ropa?format=csv", headers=auth).get_data(as_text=True)
    assert "consent_proof_retention" in csv.splitlines()[0] and "400 days after" in csv


def test_the_retention_is_configured_by_the_environment() -> None:
    """R-CREC-06: PRIVACY_HUB_CONSENT_PROOF_RETENTION_DAYS, three years by default."""
    assert Settings.from_env({}).consent_proof_retention_days == 1095
    env = {"PRIVACY_HUB_CONSENT_PROOF_RETENTION_DAYS": "2190"}
    assert Settings.from_env(env).consent_proof_retention_days == 2190
    for bad in ("0", "-3", "three years"):
        with pytest.raises(ConfigError, match="PRIVACY_HUB_CONSENT_PROOF_RETENTION_DAYS"):
            Settings.from_env({"PRIVACY_HUB_CONSENT_PROOF_RETENTION_DAYS": bad})


def test_a_running_worker_does_the_retention_housekeeping(
        hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """R-CREC-06: the purge needs no job queued by anyone: every running worker does it at
    its start and every HOUSEKEEPING_INTERVAL after, with its clock."""
    import threading

    from privacy_hub.jobs import retention

    ran = threading.Event()
    seen: list[datetime] = []
    when = datetime(2031, 5, 17, 12, 0, tzinfo=UTC)

    def purge(h: Hub, now: datetime, **_: Any) -> int:
        assert h is hub
        seen.append(now)
        ran.set()
        return 0

    monkeypatch.setattr(retention, "purge_consent_proof", purge)
    stop = threading.Event()
    worker = threading.Thread(target=Worker(hub, clock=lambda: when).run, args=(stop,),
                              kwargs={"poll_interval": 0.05})
    worker.start()
    try:
        assert ran.wait(10)
    finally:
        stop.set()
        worker.join(10)
    assert seen == [when]
