"""Bulk writes of new customers and their data keys, for the CRM import.

The rows are those of Vault.seal_new and KeyRing.prepare_data_keys. They are written as
the vault writes single ones (KeyRing.store_data_keys, Vault.create_new), but cheaper for the
database: PostgreSQL gets them with COPY (one statement per table and batch, where an
executemany runs one INSERT per row), SQLite with one executemany of plain tuples. Every
value goes through its column type's own bind processor (once per distinct value in a
row, so a timestamp shared by a batch is converted once), so the stored values are
exactly the ones the ORM stores.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection, LargeBinary, Table, insert
from sqlalchemy.orm import Session

import audit
from audit import log as audit_log
from audit.clock import utcnow
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
    fixed = {"status": "active", "created_at": now, "updated_at": now, "erased_at": None}
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
    audit_log.record_many(session, actor=actor, action="customer.created", entries=entries)
    return [row["id"] for row in rows]


def write_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]],
               fixed: Mapping[str, Any] | None = None) -> None:
    """INSERT ``rows``, each with a value for every column not in ``fixed`` (the same
    values for every row), in one statement (COPY, PostgreSQL) or one executemany."""
    dialect = conn.dialect
    names, processors = _plan(conn, table)
    fixed = fixed or {}
    cache: dict[str, tuple[Any, Any]] = {}

    def value(name: str, raw: Any) -> Any:
        proc = processors.get(name)
        if proc is None or raw is None:
            return raw
        last = cache.get(name)
        if last is not None and last[0] is raw:
            return last[1]
        out = proc(raw)
        cache[name] = (raw, out)
        return out

    constants = {name: value(name, raw) for name, raw in fixed.items()}
    getters = [(name, name in constants, constants.get(name), name in processors)
               for name in names]
    params = [tuple(const if is_fixed else value(name, row[name]) if converted else row[name]
                    for name, is_fixed, const, converted in getters) for row in rows]
    if dialect.name == "postgresql":
        from psycopg import sql  # only here: SQLite installs may lack psycopg

        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, names)))
        driver = conn.connection.driver_connection
        if driver is None:  # pragma: no cover - a live connection always has one
            raise RuntimeError("no driver connection")
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for param in params:
                copy.write_row(param)
        return
    conn.exec_driver_sql(_insert_sql(conn, table, names), params)


_Plan = tuple[list[str], dict[str, Callable[[Any], Any]]]
_PLANS: dict[tuple[str, Table], _Plan] = {}
_SQL: dict[tuple[str, Table], str] = {}


def _plan(conn: Connection, table: Table) -> _Plan:
    """The columns in order and the bind processor of each column that has one."""
    dialect = conn.dialect
    plan = _PLANS.get((dialect.name, table))
    if plan is None:
        names = [c.key for c in table.columns]
        # Bytes go to the drivers as they are (sqlite3 and psycopg take them natively).
        processors: dict[str, Callable[[Any], Any]] = {
            c.key: proc for c in table.columns
            if not isinstance(c.type, LargeBinary)
            and (proc := c.type.dialect_impl(dialect).bind_processor(dialect))}
        plan = _PLANS[(dialect.name, table)] = (names, processors)
    return plan


def _insert_sql(conn: Connection, table: Table, names: list[str]) -> str:
    key = (conn.dialect.name, table)
    text = _SQL.get(key)
    if text is None:
        compiled = insert(table).compile(dialect=conn.dialect)
        order = list(compiled.positiontup or [])
        if not compiled.positional or order != names:
            raise NotImplementedError(f"bulk insert on {conn.dialect.name}: only sqlite and "
                                      "postgresql")
        text = _SQL[key] = compiled.string
    return text
