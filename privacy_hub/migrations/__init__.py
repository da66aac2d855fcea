"""Alembic migrations, run from code so they work from an installed package.

Two branches: ``main`` (every package's tables) and ``keystore`` (the key store's
tables), so the key store can live in a database of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, MetaData

HERE = Path(__file__).parent


def main_metadata() -> list[MetaData]:
    """The MetaData of every table outside the key store."""
    from audit.models import AuditBase
    from consent.models import ConsentBase
    from dsar.models import DsarBase
    from privacy_hub.jobs.outbox import OutboxBase
    from privacy_hub.models import AppBase
    from privacy_hub.portal.models import SignInLink  # noqa: F401 - registers its table on AppBase
    from privacy_hub.vault.models import VaultBase

    return [AuditBase.metadata, VaultBase.metadata, AppBase.metadata, ConsentBase.metadata,
            OutboxBase.metadata, DsarBase.metadata]


def keystore_metadata() -> list[MetaData]:
    from privacy_hub.vault.keystore import KeystoreBase

    return [KeystoreBase.metadata]


def alembic_config(connection: Connection | None = None, branch: str = "main") -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option(
        "version_locations", f"{HERE / 'versions'} {HERE / 'keystore_versions'}"
    )
    cfg.set_main_option("path_separator", "space")
    cfg.attributes["connection"] = connection
    cfg.attributes["branch"] = branch
    return cfg


def _run(engine: Engine, target: str, branch: str, fn: Any = command.upgrade) -> None:
    with engine.begin() as conn:
        fn(alembic_config(conn, branch), target)


def upgrade(engine: Engine, keystore_engine: Engine | None = None) -> None:
    """Bring the database (and a separate key store) to the latest schema."""
    if keystore_engine is None or keystore_engine is engine:
        _run(engine, "heads", "all")
        return
    _run(engine, "main@head", "main")
    _run(keystore_engine, "keystore@head", "keystore")


def downgrade_all(engine: Engine) -> None:
    _run(engine, "base", "all", command.downgrade)
