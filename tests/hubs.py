"""Build real hubs for tests: migrated database, fresh random keys, no shared state."""

from __future__ import annotations

import secrets
from pathlib import Path

from privacy_hub import migrations
from privacy_hub.config import Settings
from privacy_hub.db import make_engine
from privacy_hub.hub import Hub
from privacy_hub.vault.root import FileRootKey


def make_settings(tmp_path: Path, db_url: str, **overrides: object) -> Settings:
    instance = tmp_path / "instance"
    instance.mkdir(exist_ok=True)
    key_file = instance / "root.key"
    if not key_file.exists():
        FileRootKey.create(key_file)
    settings = Settings(
        instance_path=instance,
        database_url=db_url,
        secret_key=secrets.token_urlsafe(48).encode(),
        root_key_file=key_file,
        sqlite_synchronous="NORMAL",
        testing=True,
        audit_checkpoint_every=25,
    )
    return settings.with_(**overrides) if overrides else settings


def migrate(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    keystore = make_engine(settings.keystore_url) if settings.keystore_url else None
    try:
        migrations.upgrade(engine, keystore)
    finally:
        engine.dispose()
        if keystore is not None:
            keystore.dispose()


def make_hub(tmp_path: Path, db_url: str, **overrides: object) -> Hub:
    settings = make_settings(tmp_path, db_url, **overrides)
    migrate(settings)
    return Hub.open(settings, bootstrap=True)
