"""Migration 0022 on an instance with consent decisions (R-GATE-03): each current-state row
gets the receipt id and notice version of the ledger event it names, so a check can name
them without a join; SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import select, text

import audit
from audit.clock import utcnow
from consent import purposes as registry
from consent.catalogue import ECOMMERCE
from consent.ledger import Decision
from consent.models import ConsentState, Notice
from privacy_hub import migrations
from privacy_hub.db import make_engine, transaction
from privacy_hub.hub import Hub
from privacy_hub.vault.models import PERSONAL_FIELDS
from tests.hubs import make_hub, migrate

ACTOR = audit.Actor("cli", "tests")


def test_existing_states_are_filled_from_the_ledger(tmp_path: Path, db_url: str) -> None:
    """R-GATE-03: after the upgrade every state names its event's receipt and notice."""
    old = make_hub(tmp_path, db_url)
    with transaction(old.sessions) as session:
        for purpose in ECOMMERCE:
            registry.create(session, purpose, actor=ACTOR, allowed_fields=PERSONAL_FIELDS)
        session.add(Notice(version="2026-10", language="en", text="n", sha256="0" * 64,
                           created_at=utcnow()))
        customer, _ = old.vault.upsert(session, {"email": "state@example.org"}, actor=ACTOR)
    with transaction(old.sessions) as session:
        first = old.ledger.record(session, customer["id"], Decision(
            purpose="marketing.sms", granted=True, source="shop", notice_version="2026-10"),
            actor=ACTOR)
        latest = old.ledger.record(session, customer["id"], Decision(
            purpose="marketing.sms", granted=False, source="shop"), actor=ACTOR)
        other = old.ledger.record(session, customer["id"], Decision(
            purpose="analytics.behaviour", granted=True, source="shop",
            notice_version="2026-10"), actor=ACTOR)
    old.close()
    engine = make_engine(old.settings.database_url)
    try:
        with engine.begin() as conn:
            command.downgrade(migrations.alembic_config(conn, "all"), "0021")
        with engine.begin() as conn:
            columns = set(conn.execute(text("SELECT * FROM consent_state LIMIT 0")).keys())
            assert "receipt_id" not in columns and "notice_version" not in columns
    finally:
        engine.dispose()
    migrate(old.settings)
    hub = Hub.open(old.settings)
    try:
        with hub.sessions() as session:
            states = {s.purpose: s for s in session.scalars(select(ConsentState))}
        assert first.receipt_id != latest.receipt_id
        sms, analytics = states["marketing.sms"], states["analytics.behaviour"]
        assert (sms.last_event_id, sms.receipt_id, sms.notice_version) == (
            latest.id, latest.receipt_id, None)
        assert (analytics.last_event_id, analytics.receipt_id, analytics.notice_version) == (
            other.id, other.receipt_id, "2026-10")
    finally:
        hub.close()
