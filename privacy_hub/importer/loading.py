"""Loading checked batches: one transaction each, existing customers updated through
Vault.upsert, new ones inserted in bulk (privacy_hub/vault/bulk.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import audit
from audit.ids import new_id
from privacy_hub.db import transaction
from privacy_hub.importer.checking import CheckedRow, may_be_new, vault_error_messages
from privacy_hub.jobs import art14
from privacy_hub.vault.bulk import insert_customers, store_data_keys
from privacy_hub.vault.cells import TABLE as CUSTOMERS
from privacy_hub.vault.errors import VaultError
from privacy_hub.vault.models import Customer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from privacy_hub.hub import Hub

IMPORT_ACTOR = audit.Actor("cli", "import")
IDENTIFIERS = ("external_id", "email")  # each belongs to one customer, so one row
# SQLite settings for the loading connection (see BatchLoader._load)
BULK_CACHE_KIB = 65536
BULK_CHECKPOINT_PAGES = 10_000


@dataclass
class ImportReport:
    """What an import did: customers created and updated, rows rejected and why."""

    created: int
    updated: int
    #: (1-based line in the file, messages) of each row not loaded, in file order
    rejected: list[tuple[int, list[str]]] = field(default_factory=list)


class BatchLoader:
    """Loads checked batches, one transaction each, and keeps the report."""

    def __init__(self, hub: Hub, *, source: str | None = None) -> None:
        self.hub = hub
        #: who the data came from when not from the subject (R-DEAD-05: Art. 14 notice)
        self.source = source
        self.report = ImportReport(0, 0, [])
        self.seen: dict[str, dict[str, int]] = {name: {} for name in IDENTIFIERS}
        #: customers this import created; no later row can match them (see _claim)
        self.created_ids: set[str] = set()
        # With the key store in another database, one session commits the two databases
        # in no fixed order: commit new keys first, so a crash can leave an unused key
        # behind but never a customer without one.
        self.keys_first = hub.keystore_engine is not hub.engine
        self.tune_sqlite = hub.engine.dialect.name == "sqlite"

    def load(self, checked: list[CheckedRow]) -> None:
        """Load one checked batch in one transaction; rejected rows go to the report."""
        rows: list[CheckedRow] = []
        for row in checked:
            errors = row.errors if row.data is None else self._claim(row.line, row.data)
            if errors:
                self.report.rejected.append((row.line, errors))
            else:
                rows.append(row)
        if rows:
            self._load(rows)

    def _claim(self, line: int, data: Mapping[str, Any]) -> list[str]:
        """Reject a row repeating an earlier row's email or external_id; else remember it."""
        claims = [(name, data[name]) for name in IDENTIFIERS if name in data]
        clashes = [f"{name}: same as line {self.seen[name][value]}"
                   for name, value in claims if value in self.seen[name]]
        if not clashes:
            for name, value in claims:
                self.seen[name][value] = line
        return clashes

    def _load(self, rows: list[CheckedRow]) -> None:
        hub, vault = self.hub, self.hub.vault
        if self.keys_first:
            with transaction(hub.sessions) as session:
                rows = self._sealed(session, rows)
        created = updated = 0
        rejected: list[tuple[int, list[str]]] = []
        upserted: list[str] = []
        with transaction(hub.sessions) as session:
            if self.tune_sqlite:
                conn = session.connection(bind_arguments={"mapper": Customer})
                # A bulk load rewrites index pages all over the file: a larger page cache
                # reads them again less, and checkpointing every 10,000 pages instead of
                # 1,000 copies (and syncs) each page once for several batches, not each
                # time. import_csv puts both back when it ends.
                conn.exec_driver_sql(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")
                conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={BULK_CHECKPOINT_PAGES}")
            wanted = {name: [r.data[name] for r in rows if r.data and name in r.data]
                      for name in IDENTIFIERS}
            # The sealed rows carry their blind indexes: not computed a second time.
            indexes = {(name, r.data[name]): r.sealed[f"{name}_bidx"]
                       for r in rows if r.data and r.sealed
                       for name in IDENTIFIERS if name in r.data}
            for name in IDENTIFIERS:  # external_id first: upsert's order
                vault.lock_identifiers(session, name, wanted[name], indexes=indexes)
            existing = self._existing(session, wanted, indexes)
            new: list[CheckedRow] = []
            for row in rows:
                data = row.data or {}
                if any(data.get(name) in existing[name] for name in IDENTIFIERS):
                    if self.keys_first and row.sealed:  # its stored key stays unused
                        hub.keyring.destroy_data_key(session, row.sealed["id"])
                    try:
                        profile, was_created = vault.upsert(session, data, actor=IMPORT_ACTOR)
                    except VaultError as exc:
                        rejected.append((row.line, vault_error_messages(exc)))
                        continue
                    upserted.append(str(profile["id"]))
                    created += was_created
                    updated += not was_created
                elif may_be_new(row):
                    new.append(row)
                else:
                    rejected.append((row.line, ["email: required for a new customer "
                                                "(no customer has this external_id)"]))
            if not self.keys_first:
                new = self._sealed(session, new)
            details: dict[str, object] = {"source": "import"}
            if self.source:
                details["import_source"] = self.source
            ids = insert_customers(session, [r.sealed for r in new if r.sealed],
                                   actor=IMPORT_ACTOR, details=details)
            if vault.suppression is not None:  # R-ERASE-05: listed identifiers, flagged
                vault.suppression.screen(session, {r.sealed["id"]: r.data for r in new
                                                   if r.sealed and r.data}, actor=IMPORT_ACTOR)
            if self.source:  # R-DEAD-05: not from the subject, so they must be told
                art14.schedule(session, [*ids, *upserted], source=self.source)
        self.created_ids.update(ids)
        self.report.created += created + len(ids)
        self.report.updated += updated
        self.report.rejected.extend(rejected)

    def _existing(self, session: Session, wanted: Mapping[str, list[str]],
                  indexes: Mapping[tuple[str, str], bytes]) -> dict[str, dict[str, str]]:
        """Vault.existing_identifiers, asked only about the values it could find.

        That is the values whose blind index some customer has who was not created by
        this import, or was changed since: found with one query per identifier that
        reads no ciphertext (the index is truncated: at 10^5 customers, most values of
        a batch have candidates, nearly all of them customers this import created).
        """
        vault = self.hub.vault
        conn = session.connection(bind_arguments={"mapper": Customer})
        query = _INDEX_QUERIES.get(conn.dialect.paramstyle)
        if query is None:  # a driver we have no raw query for
            return vault.existing_identifiers(session, wanted, indexes=indexes,
                                              skip_created=self.created_ids)
        sought: dict[str, list[str]] = {}
        for name, values in wanted.items():
            by_index: dict[bytes, list[str]] = {}
            for value in values:
                bidx = indexes.get((name, value)) or vault.indexer.index(
                    f"{CUSTOMERS}.{name}", value)
                by_index.setdefault(bidx, []).append(value)
            matched: set[bytes] = set()
            todo = list(by_index)
            for start in range(0, len(todo), INDEX_CHUNK):
                chunk = todo[start:start + INDEX_CHUNK]
                sql, params = query(f"{name}_bidx", chunk)
                matched.update(
                    bytes(bidx) for bidx, customer_id, unchanged
                    in conn.exec_driver_sql(sql, params)
                    if not (unchanged and customer_id in self.created_ids))
            sought[name] = [value for bidx in matched for value in by_index[bidx]]
        if not any(sought.values()):
            return {name: {} for name in wanted}
        return vault.existing_identifiers(session, sought, indexes=indexes,
                                          skip_created=self.created_ids)

    def _sealed(self, session: Session, rows: list[CheckedRow]) -> list[CheckedRow]:
        """The rows, those that may be new sealed under fresh keys now stored.

        The checker's keys are stored as they are, unless a key rotation has happened
        since: then those rows are sealed again, under keys wrapped by the new version.
        """
        keyring, out = self.hub.keyring, list(rows)
        todo = [i for i, row in enumerate(rows) if may_be_new(row)]
        key_rows = [kr for i in todo if (kr := rows[i].key_row) is not None]
        if len(key_rows) == len(todo) and store_data_keys(session, keyring, key_rows):
            return out
        keys = keyring.new_data_keys(session, [new_id() for _ in todo])
        for i, key in zip(todo, keys.values(), strict=True):
            out[i] = out[i]._replace(key_row=None,
                                     sealed=self.hub.vault.seal_new(key, out[i].data or {}))
        return out


def _qmark_query(column: str, values: list[bytes]) -> tuple[str, tuple[bytes, ...]]:
    marks = ",".join("?" * len(values))
    return _INDEX_SQL.format(column=column, where=f"IN ({marks})"), tuple(values)


def _pyformat_query(column: str, values: list[bytes]) -> tuple[str, dict[str, object]]:
    return _INDEX_SQL.format(column=column, where="= ANY(%(values)s)"), {"values": values}


# The column is one of the vault's blind-index columns; the values are bound parameters.
_INDEX_SQL = "SELECT {column}, id, updated_at = created_at FROM customers WHERE {column} {where}"
# Blind index -> (the index, customer id, unchanged since created) rows, by paramstyle
# (sqlite3: qmark; psycopg: pyformat)
_INDEX_QUERIES: dict[str, Callable[[str, list[bytes]], tuple[str, Any]]] = {
    "qmark": _qmark_query, "pyformat": _pyformat_query}
INDEX_CHUNK = 900  # SQLite before 3.32 takes at most 999 parameters
