"""Migration 0019 on an instance with consent decisions (R-CREC-06): the evidence moves
out of the ledger, is sealed under each customer's key when the hub next starts (or
purged, for a customer already erased), and the audit chain and the receipts still
verify, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from alembic import command
from sqlalchemy import select, text

import audit
from consent import purposes as registry
from consent.catalogue import ECOMMERCE
from consent.ledger import Decision
from consent.ledger_reads import history
from consent.models import ConsentEvidence, Receipt
from consent.receipts import verify
from privacy_hub import migrations
from privacy_hub.db import make_engine, transaction
from privacy_hub.hub import Hub
from privacy_hub.vault.models import PERSONAL_FIELDS
from tests.hubs import make_hub, migrate

ACTOR = audit.Actor("cli", "tests")
PURPOSE = "marketing.sms"
# As revision 0016's ledger stored it: json.dumps(evidence, sort_keys=True), so with
# spaces and non-ASCII escaped, unlike the canonical form the digest is taken of.
OLD_EVIDENCE = {"user_agent": "Mozilla/5.0 Müller-Browser/1.0", "ui_element": "checkout-sms",
                "gpc": False}


def _decisions(hub: Hub, customer_id: str) -> list[str]:
    with transaction(hub.sessions) as session:
        return [hub.ledger.record(session, customer_id, Decision(
            purpose=PURPOSE, granted=granted, source="checkout"), actor=ACTOR).id
            for granted in (True, False)]


def _at_0016_with_old_evidence(hub: Hub) -> tuple[str, str, list[str], list[str]]:
    """A filled instance taken back to revision 0016, its ledger events holding their
    evidence in consent_events.evidence as that revision's code wrote it."""
    with transaction(hub.sessions) as session:
        for purpose in ECOMMERCE:
            registry.create(session, purpose, actor=ACTOR, allowed_fields=PERSONAL_FIELDS)
        kept, _ = hub.vault.upsert(session, {"email": "kept@example.org"}, actor=ACTOR)
        gone, _ = hub.vault.upsert(session, {"email": "gone@example.org"}, actor=ACTOR)
    kept_events, gone_events = _decisions(hub, kept["id"]), _decisions(hub, gone["id"])
    with transaction(hub.sessions) as session:
        hub.vault.crypto_shred(session, gone["id"], actor=ACTOR)
    hub.close()
    engine = make_engine(hub.settings.database_url)
    try:
        with engine.begin() as conn:
            command.downgrade(migrations.alembic_config(conn, "all"), "0016")
        with engine.begin() as conn:
            conn.execute(text("UPDATE consent_events SET evidence = :e"),
                         {"e": json.dumps(OLD_EVIDENCE, sort_keys=True)})
    finally:
        engine.dispose()
    return kept["id"], gone["id"], kept_events, gone_events


def test_evidence_before_0019_is_moved_out_sealed_and_chain_and_receipts_still_verify(
        tmp_path: Path, db_url: str) -> None:
    """R-CREC-06: a database at revision 0016, filled, then upgraded."""
    old = make_hub(tmp_path, db_url)
    kept, gone, kept_events, gone_events = _at_0016_with_old_evidence(old)
    migrate(old.settings)
    hub = Hub.open(old.settings)  # seals what the migration moved
    try:
        digest = hashlib.sha256(json.dumps(OLD_EVIDENCE, sort_keys=True, separators=(",", ":"),
                                           ensure_ascii=False).encode()).hexdigest()
        with hub.sessions() as session:
            report = audit.verify_chain(session, hub.audit_public_keys())
            assert report.ok and report.first_bad_seq is None, report.problem
            receipts = session.scalars(select(Receipt)).all()
            assert len(receipts) == 4
            for r in receipts:
                assert verify(r.jws, hub.receipt_jwks(session)) == json.loads(r.payload)

            events = {e["id"]: e for e in history(session, kept, hub.proof)}
            assert set(events) == set(kept_events)
            for event in events.values():
                assert event["evidence"] == OLD_EVIDENCE and event["evidence_sha256"] == digest
            rows = {r.event_id: r for r in session.scalars(select(ConsentEvidence))}
            for event_id in kept_events:
                row = rows[event_id]
                assert row.legacy_json is None and row.purged_at is None
                assert row.evidence_ct is not None and b"checkout-sms" not in row.evidence_ct

            erased_at = session.execute(text("SELECT erased_at FROM customers WHERE id = :c"),
                                        {"c": gone}).scalar_one()
            for event in history(session, gone, hub.proof):
                assert event["id"] in gone_events and event["evidence"] is None
                assert event["evidence_purge_reason"] == "erasure"
                assert event["evidence_purged_at"][:19] == str(erased_at)[:19].replace(" ", "T")
            for event_id in gone_events:
                assert rows[event_id].evidence_ct is None and rows[event_id].legacy_json is None

            sealed = audit.entries(session, action="consent.evidence_sealed", limit=10)
            assert [json.loads(e.details)["events"] for e in sealed] == [2]
            columns = set(session.execute(text("SELECT * FROM consent_events LIMIT 0")).keys())
            assert "evidence" not in columns and "evidence_sha256" in columns
    finally:
        hub.close()
