"""Migration 0017: a request's rejection ground and time (R-DSAR-06), on SQLite and
PostgreSQL; rejections decided before it get the ground ``other`` and their last change
as the time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session

from dsar.models import DataSubjectRequest
from privacy_hub import migrations
from privacy_hub.db import make_engine
from tests.hubs import make_settings, migrate

_ROW = ("INSERT INTO requests (id, type, status, customer_id, channel, received_at, due_at, "
        "extension_months, details, created_at, updated_at, rejection_reason) VALUES "
        "(:id, 'access', :status, NULL, 'letter', :t, :t, 0, '{}', :t, :changed, :reason)")


def test_the_rejection_migration_round_trips_and_fills_old_rejections(
        tmp_path: Path, db_url: str) -> None:
    migrate(make_settings(tmp_path, db_url))
    engine = make_engine(db_url)
    received = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    changed = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
    try:
        with engine.begin() as conn:
            command.downgrade(migrations.alembic_config(conn, "main"), "0016")
        columns = {c["name"] for c in inspect(engine).get_columns("requests")}
        assert not {"rejection_ground", "rejected_at"} & columns
        with engine.begin() as conn:
            for rid, status, reason in (("r-rejected", "rejected", "duplicate"),
                                        ("r-open", "pending_verification", None)):
                conn.execute(text(_ROW), {"id": rid, "status": status, "t": received,
                                          "changed": changed, "reason": reason})
            command.upgrade(migrations.alembic_config(conn, "main"), "main@head")
        with engine.connect() as conn:
            rows = {r.id: r for r in conn.execute(text(
                "SELECT id, rejection_ground, rejected_at FROM requests"))}
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(ctx, migrations.main_metadata()
                                    + migrations.keystore_metadata()) == []
        assert rows["r-rejected"].rejection_ground == "other"
        with Session(engine) as session:
            old = session.get(DataSubjectRequest, "r-rejected")
            assert old is not None and old.rejected_at == changed
        assert rows["r-open"].rejection_ground is None and rows["r-open"].rejected_at is None
    finally:
        engine.dispose()
