"""Bulk writes of new customers and their data keys, for the CRM import.

The rows are those of Vault.seal_new and KeyRing.prepare_data_keys. They are written as
the vault writes single ones (KeyRing.store_data_keys, Vault.create_new), but cheaper for the
database: PostgreSQL gets them with COPY (one statement per table and batch, where an
executemany runs one INSERT per row), SQLite with one executemany of plain tuples
(privacy_hub/db.py insert_many). Every value goes through its column type's own bind
processor (audit/prepared.py; once per distinct value in a row, so a timestamp shared by
a batch is converted once), so the stored values are exactly the ones the ORM stores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection, Table
from sqlalchemy.orm import Session

import audit
from audit.clock import utcnow
from audit.prepared import insert_of
from privacy_hub.db import insert_many
from privacy_hub.vault.keyring import KeyRing
from privacy_hub.vault.keystore import CustomerKey
from privacy_hub.vault.models import PERSONAL_FIELDS, Customer

_CUSTOMERS = cast(Table, Customer.__table__)
_CUSTOMER_KEYS = cast(Table, CustomerKey.__table__)
_SORTED_FIELDS = tuple(sorted(PERSONAL_FIELDS))


def store_data_keys(session: Session, keyring: KeyRing,
                    rows: Sequence[Mapping[str, object]]) -> bool:
    """KeyRing.store_data_keys: store rows of prepare_data_keys. Callers commit.

    Returns False, storing nothing, when a rotation has made their key-encryption key
    version non-primary since. The primary is share-locked (KeyRing.primary_version),
    so it cannot be retired before we commit.
    """
    if not rows:
        return True
    primary = keyring.primary_version(session)
    if any(row["kek_version"] != primary for row in rows):
        return False
    write_rows(session.connection(bind_arguments={"mapper": CustomerKey}), _CUSTOMER_KEYS,
               rows)
    return True


def insert_customers(session: Session, rows: Sequence[Mapping[str, Any]], *,
                     actor: audit.Actor, details: Mapping[str, object] | None = None
                     ) -> list[str]:
    """Insert customers sealed by Vault.seal_new, one audit entry each.

    The caller has stored their keys and checked, under Vault.lock_identifiers, that
    none exists yet. Returns the ids. Callers commit.
    """
    if not rows:
        return []
    now = utcnow()
    fixed = {"status": "active", "created_at": now, "updated_at": now, "erased_at": None,
             "last_active_at": now, "inactivity_notice_at": None}
    write_rows(session.connection(bind_arguments={"mapper": Customer}), _CUSTOMERS, rows,
               fixed)
    # Rows with the same fields share one details object, checked and encoded once.
    shared: dict[tuple[str, ...], dict[str, object]] = {}
    entries = []
    for row in rows:
        fields = tuple(name for name in _SORTED_FIELDS if row[f"{name}_ct"] is not None)
        entry_details = shared.get(fields)
        if entry_details is None:
            entry_details = shared[fields] = {"fields": list(fields), **(details or {})}
        entries.append((row["id"], entry_details))
    audit.record_many(session, actor=actor, action="customer.created", entries=entries)
    return [row["id"] for row in rows]


def write_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]],
               fixed: Mapping[str, Any] | None = None) -> None:
    """INSERT ``rows``, each with a value for every column not in ``fixed`` (the same
    values for every row), in one statement (COPY, PostgreSQL) or one executemany."""
    if conn.dialect.name != "postgresql":
        insert_many(conn, table, rows, fixed)
        return
    from psycopg import sql  # only here: SQLite installs may lack psycopg

    names = [c.key for c in table.columns]
    params = insert_of(table).plan(conn.dialect).rows(rows, names, fixed)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, names)))
    driver = conn.connection.driver_connection
    if driver is None:  # pragma: no cover - a live connection always has one
        raise RuntimeError("no driver connection")
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for param in params:
            copy.write_row(param)
