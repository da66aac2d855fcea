"""Customers by identifier (email, phone, external id): blind-index candidates, each
decrypted and compared (a truncated index matches several people), and the locks that
keep an identifier to one customer.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, or_, select, text
from sqlalchemy.orm import Session

from audit.prepared import Prepared
from privacy_hub.vault.cells import TABLE, blind_index, identifier_lock_id
from privacy_hub.vault.keystore import DEFAULT_CLASS, CustomerKey
from privacy_hub.vault.models import INDEXED_FIELDS, Customer
from privacy_hub.vault.records import CustomerRecords

# Built once (compiled once) for the hot paths: lookups and creates.
_CUSTOMERS = cast(Table, Customer.__table__)
_KEYS = cast(Table, CustomerKey.__table__)
_CANDIDATES = {
    name: select(_CUSTOMERS.c.id, _CUSTOMERS.c[f"{name}_ct"].label("ct"))
    .where(_CUSTOMERS.c[f"{name}_bidx"] == bindparam("bidx"))
    for name in INDEXED_FIELDS
}
_CANDIDATES_WITH_KEYS = {
    name: select(_CUSTOMERS.c.id, _CUSTOMERS.c[f"{name}_ct"].label("ct"),
                 _KEYS.c.dek_version, _KEYS.c.kek_version, _KEYS.c.wrapped)
    .select_from(_CUSTOMERS.outerjoin(_KEYS, and_(_KEYS.c.customer_id == _CUSTOMERS.c.id,
                                                  _KEYS.c.key_class == DEFAULT_CLASS)))
    .where(_CUSTOMERS.c[f"{name}_bidx"] == bindparam("bidx"))
    for name in INDEXED_FIELDS
}
# The same, through the driver, for the request hot paths (Vault.lookup with a HotPath,
# Vault.create_new).
_CANDIDATES_RAW = {name: Prepared(stmt) for name, stmt in _CANDIDATES_WITH_KEYS.items()}
#: ids per statement when a bulk load asks about many values at once
_CHUNK = 500


class CustomerIdentifiers(CustomerRecords):
    """Finding customers by identifier, and locking identifiers for writers (Vault's part)."""

    def _candidates(self, session: Session, name: str, value: str) -> list[str]:
        """Ids of the customers whose ``name`` is exactly ``value`` (normalised).

        One query: the blind index's candidates, their ciphertext of that field and,
        when the key store shares the database, their wrapped data keys; then each
        candidate is decrypted and compared, since a truncated index matches several.
        """
        bidx = blind_index(self.indexer, name, value)
        conn = session.connection(bind_arguments={"mapper": Customer})
        keyring = self.keyring
        rows: Sequence[Any]
        if conn.engine is session.get_bind(mapper=CustomerKey):
            rows = conn.execute(_CANDIDATES_WITH_KEYS[name], {"bidx": bidx}).all()
            keys = {row.id: keyring.key_from_row(session, row.id, DEFAULT_CLASS,
                                                 row.dek_version, row.kek_version, row.wrapped)
                    for row in rows if row.wrapped is not None}
        else:
            rows = conn.execute(_CANDIDATES[name], {"bidx": bidx}).all()
            keys = keyring.data_keys(session, [row.id for row in rows]) if rows else {}
        column = f"{name}_ct"
        wanted = value.encode()
        matches = []
        for row in rows:
            key = keys.get(row.id)
            blob = row.ct
            if key is not None and blob is not None and key.open(TABLE, column, row.id,
                                                                 blob) == wanted:
                matches.append(row.id)
        return matches

    def _candidates_on(self, cursor: Any, dialect: Any, name: str,
                       value: str) -> list[str] | None:
        """_candidates() through a driver cursor; None when a candidate's data key is
        wrapped under a key-encryption key not loaded here (use _candidates then)."""
        bidx = blind_index(self.indexer, name, value)
        rows = _CANDIDATES_RAW[name].execute(cursor, dialect, {"bidx": bidx}).fetchall()
        column = f"{name}_ct"
        wanted = value.encode()
        matches = []
        for customer_id, blob, dek_version, kek_version, wrapped in rows:
            if wrapped is None or blob is None:
                continue
            key = self.keyring.unwrap_row(customer_id, DEFAULT_CLASS, dek_version, kek_version,
                                          wrapped)
            if key is None:
                return None
            if key.open(TABLE, column, customer_id, bytes(blob)) == wanted:
                matches.append(customer_id)
        return matches

    def find_id(self, session: Session, name: str, value: str) -> str | None:
        """The id of the customer with this identifier (normalised), or None."""
        matches = self._candidates(session, name, value)
        return matches[0] if matches else None

    def find_one(self, session: Session, name: str, value: str) -> Customer | None:
        """The row of the customer with this identifier (normalised), or None."""
        customer_id = self.find_id(session, name, value)
        return None if customer_id is None else self.get_row(session, customer_id)

    def _lock_identifier(self, session: Session, name: str, value: str) -> None:
        # On PostgreSQL, serialise concurrent create-or-update calls for one identifier so
        # two of them cannot both create the customer. (SQLite's write lock already does.)
        if session.get_bind().dialect.name == "postgresql":
            lock_id = identifier_lock_id(name, blind_index(self.indexer, name, value))
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id})

    # -- bulk loads (CRM import) ---------------------------------------------------
    def lock_identifiers(self, session: Session, name: str, values: Iterable[str], *,
                         indexes: Mapping[tuple[str, str], bytes] | None = None) -> None:
        """Take _lock_identifier's locks for many values in one statement (PostgreSQL).

        Locks are taken in ascending order; call it for external_id before email, the
        order upsert locks in, so a bulk load and single upserts cannot deadlock.
        ``indexes`` has blind indexes already computed, as for existing_identifiers.
        """
        if session.get_bind().dialect.name != "postgresql":
            return
        known = indexes or {}
        lock_ids = sorted({
            identifier_lock_id(name, known.get((name, value))
                               or blind_index(self.indexer, name, value))
            for value in values
        })
        if lock_ids:
            session.execute(text("SELECT pg_advisory_xact_lock(k) "
                                 "FROM unnest(CAST(:ids AS bigint[])) AS k"), {"ids": lock_ids})

    def existing_identifiers(self, session: Session, wanted: Mapping[str, Iterable[str]], *,
                             skip_created: Container[str] = (),
                             indexes: Mapping[tuple[str, str], bytes] | None = None,
                             ) -> dict[str, dict[str, str]]:
        """Which of these normalised identifiers belong to a customer: {name: {value: id}}.

        One query over the blind indexes and one for the candidates' ciphertexts (each
        split for long lists); each candidate is decrypted and compared, since a truncated
        index matches several people. A bulk load passes the customers it created as
        ``skip_created``: it checked its rows for repeats, so while unchanged since
        created they match nothing it looks for, and are neither read nor decrypted.
        ``indexes`` has blind indexes already computed ({(name, value): index}, e.g. by
        seal_new), so they are not computed again.
        """
        by_index: dict[tuple[str, bytes], set[str]] = {}
        known = indexes or {}
        for name, values in wanted.items():
            for value in values:
                bidx = known.get((name, value)) or blind_index(self.indexer, name, value)
                by_index.setdefault((name, bidx), set()).add(value)
        names = list(wanted)
        unchanged = (Customer.updated_at == Customer.created_at).label("unchanged")
        pairs = list(by_index)
        candidates: set[str] = set()
        for start in range(0, len(pairs), _CHUNK):
            chunk = pairs[start:start + _CHUNK]
            conditions = [getattr(Customer, f"{name}_bidx").in_([b for n, b in chunk if n == name])
                          for name in names if any(n == name for n, _ in chunk)]
            candidates.update(
                cid for cid, same in session.execute(
                    select(Customer.id, unchanged).where(or_(*conditions)))
                if not (same and cid in skip_created))
        columns = [Customer.id, *(getattr(Customer, f"{n}_bidx") for n in names),
                   *(getattr(Customer, f"{n}_ct") for n in names)]
        rows: dict[str, Any] = {}
        ids = sorted(candidates)
        for start in range(0, len(ids), _CHUNK):
            for row in session.execute(select(*columns).where(
                    Customer.id.in_(ids[start:start + _CHUNK]))):
                rows[row.id] = row._mapping
        found: dict[str, dict[str, str]] = {name: {} for name in names}
        keys = self.keyring.data_keys(session, list(rows))
        for customer_id, row in rows.items():
            key = keys.get(customer_id)
            if key is None:
                continue
            for name in names:
                sought = by_index.get((name, row[f"{name}_bidx"]))
                blob = row[f"{name}_ct"]
                if sought and blob is not None:
                    value = key.open(TABLE, f"{name}_ct", customer_id, blob).decode()
                    if value in sought:
                        found[name][value] = customer_id
        return found
