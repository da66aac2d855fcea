"""Alembic environment: runs on the connection handed over by privacy_hub.migrations."""

from __future__ import annotations

from alembic import context
from sqlalchemy import MetaData

from privacy_hub.migrations import keystore_metadata, main_metadata

config = context.config
branch = config.attributes.get("branch", "all")
metadata: list[MetaData] = []
if branch in ("main", "all"):
    metadata += main_metadata()
if branch in ("keystore", "all"):
    metadata += keystore_metadata()

connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `privacy-hub db upgrade`")

known_tables = {table for md in metadata for table in md.tables}


def include_name(name: str | None, type_: str, _parents: object) -> bool:
    # A branch only manages its own tables: the key store's may share the database.
    return type_ != "table" or name in known_tables


context.configure(
    connection=connection,
    target_metadata=metadata,
    include_name=include_name,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
