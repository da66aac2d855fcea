"""The customer vault: create-or-update, lookup, read, rectify and crypto-shred customers.

Every personal field is sealed under the customer's own data key with associated data
that pins it to its cell. Domain functions take a session and never commit.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Engine, Table, and_, bindparam, insert, or_, select, text
from sqlalchemy.orm import Session

import audit
from audit.clock import rfc3339, utcnow
from audit.ids import new_id
from audit.prepared import Prepared, driver_cursor
from privacy_hub.db import driver_reader
from privacy_hub.vault.blind_index import (
    BlindIndexer,
    NormalisationError,
    normalise_email,
    normalise_external_id,
    normalise_phone,
)
from privacy_hub.vault.errors import (
    CustomerErased,
    CustomerNotFound,
    DuplicateIdentifier,
    InvalidCustomerData,
    KeyDestroyed,
)
from privacy_hub.vault.keystore import (
    DEFAULT_CLASS,
    LEGAL_RETENTION_CLASS,
    CustomerKey,
    DataKey,
    KeyRing,
)
from privacy_hub.vault.models import (
    INDEXED_FIELDS,
    JSON_FIELDS,
    PERSONAL_FIELDS,
    Customer,
    CustomerStatement,
    RetainedRecord,
)

TABLE = "customers"
ErasureHook = Callable[[Session, str], None]

# Built once (compiled once) for the hot paths: lookups and creates.
_CUSTOMERS = cast(Table, Customer.__table__)
_KEYS = cast(Table, CustomerKey.__table__)
_INSERT_CUSTOMER = insert(_CUSTOMERS)
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
_INSERT_CUSTOMER_RAW = Prepared(_INSERT_CUSTOMER)
_IDENTIFIER_LOCK_RAW = Prepared(text("SELECT pg_advisory_xact_lock(:k)"))


@dataclass(frozen=True)
class HotPath:
    """What the request hot paths use besides the vault: an engine for reads that take no
    write lock, and the process's group committer (audit.Appender) for short writes."""

    read_engine: Engine
    writer: audit.Appender


class NotLogged(Exception):
    """A read's audit entry could not be committed: its answer must not be given."""

def encode_value(name: str, value: Any) -> bytes:
    if name in JSON_FIELDS:
        return json.dumps(value, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode()
    return str(value).encode("utf-8")


def decode_value(name: str, raw: bytes) -> Any:
    if name in JSON_FIELDS:
        return json.loads(raw)
    return raw.decode("utf-8")


@dataclass(frozen=True)
class _NewCustomer:
    """A new customer's key and sealed cells, made before its transaction (Vault.upsert)."""

    key: DataKey
    raw: bytes
    values: dict[str, Any]
    fields: dict[str, Any]
    field_names: list[str]


@dataclass
class Vault:
    keyring: KeyRing
    indexer: BlindIndexer
    #: called inside the erasing transaction, e.g. to drop cached responses
    erasure_hooks: list[ErasureHook] = field(default_factory=list)

    # -- normalisation -------------------------------------------------------------
    def normalise(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Normalise identifiers; raise InvalidCustomerData naming each bad field."""
        out = dict(fields)
        errors: dict[str, list[str]] = {}
        region = None
        address = out.get("address")
        if isinstance(address, Mapping):
            region = address.get("country")
        for name, fn in (("email", normalise_email), ("external_id", normalise_external_id)):
            if out.get(name) is not None:
                try:
                    out[name] = fn(out[name])
                except NormalisationError as exc:
                    errors[name] = [str(exc)]
        if out.get("phone") is not None:
            try:
                out["phone"] = normalise_phone(out["phone"], region)
            except NormalisationError as exc:
                errors["phone"] = [str(exc)]
        if errors:
            raise InvalidCustomerData(errors)
        return out

    # -- queries -------------------------------------------------------------------
    def _candidates(self, session: Session, name: str, value: str) -> list[str]:
        """Ids of the customers whose ``name`` is exactly ``value`` (normalised).

        One query: the blind index's candidates, their ciphertext of that field and,
        when the key store shares the database, their wrapped data keys; then each
        candidate is decrypted and compared, since a truncated index matches several.
        """
        bidx = self.indexer.index(f"{TABLE}.{name}", value)
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

    def find_id(self, session: Session, name: str, value: str) -> str | None:
        """The id of the customer with this identifier (normalised), or None."""
        matches = self._candidates(session, name, value)
        return matches[0] if matches else None

    def find_one(self, session: Session, name: str, value: str) -> Customer | None:
        customer_id = self.find_id(session, name, value)
        return None if customer_id is None else self.get_row(session, customer_id)

    def lookup(self, session: Session | None, *, actor: audit.Actor, email: str | None = None,
               phone: str | None = None, external_id: str | None = None,
               hot: HotPath | None = None) -> list[str]:
        """Ids of the customers with exactly this identifier (one given).

        With ``session`` None, through ``hot``: one read on a pooled driver connection
        (no transaction, no write lock) and the audit entry group-committed by its
        writer; this returns once the entry is durable (NotLogged if it could not be).
        """
        given = {k: v for k, v in (("email", email), ("phone", phone),
                                   ("external_id", external_id)) if v is not None}
        if len(given) != 1:
            raise InvalidCustomerData({"_schema": ["give exactly one of email, phone, external_id"]})
        (name, raw), = given.items()
        value = self.normalise({name: raw})[name]
        if session is None:
            if hot is None:
                raise ValueError("lookup() needs a session or a HotPath")
            return self._lookup_hot(hot, name, value, actor)
        ids = self._candidates(session, name, value)
        audit.record(session, actor=actor, action="customer.looked_up",
                     customer_id=ids[0] if len(ids) == 1 else None,
                     details={"by": name, "matches": len(ids)})
        return ids

    def _lookup_hot(self, hot: HotPath, name: str, value: str, actor: audit.Actor) -> list[str]:
        with driver_reader(hot.read_engine) as (cursor, dialect):
            found = self._match(cursor, dialect, name, value)
        if found is None:  # a key-encryption key this process has not loaded yet
            with hot.read_engine.connect() as conn, Session(bind=conn) as session:
                found = self._candidates(session, name, value)
        entry = audit.entry(actor, "customer.looked_up",
                                found[0] if len(found) == 1 else None,
                                {"by": name, "matches": len(found)})
        try:
            hot.writer.append([entry])
        except Exception as exc:
            raise NotLogged("the lookup could not be logged") from exc
        return found

    def _match(self, cursor: Any, dialect: Any, name: str, value: str) -> list[str] | None:
        """_candidates() through a driver cursor; None when a candidate's data key is
        wrapped under a key-encryption key not loaded here (use _candidates then)."""
        bidx = self.indexer.index(f"{TABLE}.{name}", value)
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

    def get_row(self, session: Session, customer_id: str, *, for_update: bool = False) -> Customer:
        stmt = select(Customer).where(Customer.id == customer_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = session.scalars(stmt).first()
        if row is None:
            raise CustomerNotFound(customer_id)
        return row

    def profile(self, session: Session, row: Customer,
                only: Sequence[str] | None = None) -> dict[str, Any]:
        """The decrypted profile (or the tombstone of an erased customer)."""
        base: dict[str, Any] = {"id": row.id, "status": row.status,
                                "created_at": rfc3339(row.created_at),
                                "updated_at": rfc3339(row.updated_at)}
        if row.status == "erased":
            return {"id": row.id, "status": "erased", "erased_at": rfc3339(row.erased_at)}
        key = self.keyring.data_key(session, row.id)
        for name in PERSONAL_FIELDS:
            if only is not None and name not in only:
                continue
            blob = getattr(row, f"{name}_ct")
            base[name] = None if blob is None else decode_value(
                name, key.open(TABLE, f"{name}_ct", row.id, blob))
        return base

    def read(self, session: Session, customer_id: str, *, actor: audit.Actor,
             purpose: str | None = None, only: Sequence[str] | None = None) -> dict[str, Any]:
        """Read a customer (audited)."""
        row = self.get_row(session, customer_id)
        details: dict[str, object] = {"fields": sorted(only) if only is not None else "all"}
        if purpose:
            details["purpose"] = purpose
        audit.record(session, actor=actor, action="customer.read", customer_id=row.id,
                     details=details)
        return self.profile(session, row, only)

    # -- writes --------------------------------------------------------------------
    def _lock_identifier(self, session: Session, name: str, value: str) -> None:
        # On PostgreSQL, serialise concurrent create-or-update calls for one identifier so
        # two of them cannot both create the customer. (SQLite's write lock already does.)
        if session.get_bind().dialect.name == "postgresql":
            bidx = self.indexer.index(f"{TABLE}.{name}", value)
            lock_id = zlib.crc32(name.encode() + b"|" + bidx)
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id})

    def _seal_into(self, row: Customer, key: DataKey, fields: Mapping[str, Any]) -> None:
        for name, value in fields.items():
            if name not in PERSONAL_FIELDS:
                continue
            if value is None:
                setattr(row, f"{name}_ct", None)
                if name in INDEXED_FIELDS:
                    setattr(row, f"{name}_bidx", None)
                continue
            setattr(row, f"{name}_ct", key.seal(TABLE, f"{name}_ct", row.id,
                                                encode_value(name, value)))
            if name in INDEXED_FIELDS:
                setattr(row, f"{name}_bidx", self.indexer.index(f"{TABLE}.{name}", value))

    def upsert(self, session: Session, fields: Mapping[str, Any], *,
               actor: audit.Actor) -> tuple[dict[str, Any], bool]:
        """Create a customer, or update the one matching external_id or else email.

        Returns the profile and whether it was created. Callers commit.
        """
        data = self.normalise(fields)
        # A new customer's key and cells are made before the first statement: on SQLite
        # that takes the write lock, which other writers then wait for (wasted, ~0.1 ms,
        # when the customer turns out to exist).
        new = self._prepare_new(data) if data.get("email") else None
        existing: Customer | None = None
        if data.get("external_id"):
            self._lock_identifier(session, "external_id", data["external_id"])
            existing = self.find_one(session, "external_id", data["external_id"])
        if existing is None and data.get("email"):
            self._lock_identifier(session, "email", data["email"])
            existing = self.find_one(session, "email", data["email"])
            if existing is not None and data.get("external_id") and existing.external_id_ct:
                # The email belongs to another shop account: never merge two accounts.
                raise DuplicateIdentifier("email")
        if existing is None:
            if new is None:
                raise InvalidCustomerData({"email": ["Missing data for required field."]})
            return self._create(session, new, actor=actor), True
        return self._update(session, existing, data, actor=actor), False

    def create_new(self, hot: HotPath, fields: Mapping[str, Any], *,
                   actor: audit.Actor) -> dict[str, Any] | None:
        """Create a customer in a group-committed transaction (hot.writer), if no customer
        has its external_id or email; None, changing nothing, if one has (the caller then
        upserts as usual). Returns the new profile once it is durable, with its key and
        its audit entry in the same transaction.

        Needs the key store in the main database. Everything but the statements (data
        key, sealing, blind indexes, the audit entry's checks) is done before joining the
        transaction, so the write lock is held for the statements only.
        """
        data = self.normalise(fields)
        if not data.get("email"):
            return None
        new = self._prepare_new(data)
        identifiers = [(name, data[name]) for name in ("external_id", "email") if data.get(name)]
        locks = [zlib.crc32(name.encode() + b"|" + new.values[f"{name}_bidx"])
                 for name, _ in identifiers]
        customer_id = new.key.customer_id
        now = utcnow()
        row = {**new.values, "status": "active", "created_at": now, "updated_at": now,
               "erased_at": None}
        entry = audit.entry(actor, "customer.created", customer_id,
                                {"fields": new.field_names})

        def work(conn: Any, shared: dict[str, Any]) -> tuple[bool, list[Any]]:
            cursor = driver_cursor(conn)
            dialect = conn.dialect
            if dialect.name == "postgresql":
                # As _lock_identifier: concurrent creates of one identifier serialise.
                for lock_id in locks:
                    _IDENTIFIER_LOCK_RAW.execute(cursor, dialect, {"k": lock_id})
            for name, value in identifiers:
                matches = self._match(cursor, dialect, name, value)
                if matches is None or matches:
                    return False, []  # exists (or needs a key not loaded here): upsert
            primary = shared.get("vault.primary_kek")
            if primary is None:
                primary = shared["vault.primary_kek"] = self.keyring.primary_on(cursor, dialect)
            self.keyring.store_data_key_on(cursor, dialect, new.key, new.raw, *primary)
            _INSERT_CUSTOMER_RAW.execute(cursor, dialect, row)
            return True, [entry]

        if not hot.writer.run(work):
            return None
        stamp = rfc3339(now)
        return {"id": customer_id, "status": "active", "created_at": stamp,
                "updated_at": stamp, **new.fields}

    def _prepare_new(self, data: Mapping[str, Any]) -> _NewCustomer:
        key, raw = self.keyring.generate_data_key(new_id())
        values = self.seal_new(key, data)
        # What profile() would decrypt from these cells, without decrypting them.
        fields = {name: None if (value := data.get(name)) is None
                  else decode_value(name, encode_value(name, value))
                  for name in PERSONAL_FIELDS}
        return _NewCustomer(key, raw, values, fields, sorted(
            k for k, v in data.items() if k in PERSONAL_FIELDS and v is not None))

    def _create(self, session: Session, new: _NewCustomer, *,
                actor: audit.Actor) -> dict[str, Any]:
        self.keyring.store_data_key(session, new.key, new.raw)
        now = utcnow()
        values = {**new.values, "status": "active", "created_at": now, "updated_at": now,
                  "erased_at": None}
        # A Core insert: an ORM add and flush cost several times as much CPU.
        session.connection(bind_arguments={"mapper": Customer}).execute(_INSERT_CUSTOMER,
                                                                        values)
        customer_id = new.key.customer_id
        audit.record(session, actor=actor, action="customer.created", customer_id=customer_id,
                     details={"fields": new.field_names})
        stamp = rfc3339(now)
        return {"id": customer_id, "status": "active", "created_at": stamp,
                "updated_at": stamp, **new.fields}

    def _update(self, session: Session, row: Customer, data: Mapping[str, Any], *,
                actor: audit.Actor, action: str = "customer.updated") -> dict[str, Any]:
        if row.status == "erased":
            raise CustomerErased(row.id)
        if data.get("email"):
            other = self.find_id(session, "email", data["email"])
            if other is not None and other != row.id:
                raise DuplicateIdentifier("email")
        if data.get("external_id"):
            other = self.find_id(session, "external_id", data["external_id"])
            if other is not None and other != row.id:
                raise DuplicateIdentifier("external_id")
        try:
            key = self.keyring.data_key(session, row.id)
        except KeyDestroyed:
            raise CustomerErased(row.id) from None
        changed = sorted(k for k in data if k in PERSONAL_FIELDS)
        self._seal_into(row, key, data)
        row.updated_at = utcnow()
        session.flush()
        audit.record(session, actor=actor, action=action, customer_id=row.id,
                     details={"fields": changed})
        return self.profile(session, row)

    def rectify(self, session: Session, customer_id: str, changes: Mapping[str, Any], *,
                actor: audit.Actor) -> dict[str, Any]:
        """Art. 16: correct fields of one customer. Callers commit."""
        if "email" in changes and changes["email"] is None:
            raise InvalidCustomerData({"email": ["email cannot be removed"]})
        row = self.get_row(session, customer_id, for_update=True)
        if row.status == "erased":
            raise CustomerErased(row.id)
        data = self.normalise(changes)
        return self._update(session, row, data, actor=actor, action="customer.rectified")

    def add_statement(self, session: Session, customer_id: str, text: str, *,
                      concerns: Sequence[str] = (), actor: audit.Actor) -> dict[str, Any]:
        """Attach a supplementary statement (Art. 16) to an active customer. Callers
        commit. The audit entry names the statement and fields, never the text."""
        row = self.get_row(session, customer_id)
        if row.status == "erased":
            raise CustomerErased(row.id)
        unknown = sorted(set(concerns) - set(PERSONAL_FIELDS))
        if unknown:
            raise InvalidCustomerData({"concerns": [f"not a customer field: {n}"
                                                    for n in unknown]})
        statement = CustomerStatement(
            id=new_id(), customer_id=row.id, fields=",".join(sorted(set(concerns))) or None,
            added_at=utcnow(), added_by=f"{actor.kind}:{actor.id or '-'}", text_ct=b"")
        statement.text_ct = self.keyring.data_key(session, row.id).seal(
            "customer_statements", "text_ct", statement.id, text.encode())
        session.add(statement)
        audit.record(session, actor=actor, action="customer.statement_added",
                     customer_id=row.id,
                     details={"statement_id": statement.id, "fields": sorted(set(concerns))})
        return self._statement(statement, text)

    def statements(self, session: Session, customer_id: str) -> list[dict[str, Any]]:
        """The customer's supplementary statements, oldest first, decrypted (not audited:
        callers that show them to anyone audit the read)."""
        rows = session.scalars(select(CustomerStatement)
                               .where(CustomerStatement.customer_id == customer_id)
                               .order_by(CustomerStatement.added_at, CustomerStatement.id)).all()
        if not rows:
            return []
        key = self.keyring.data_key(session, customer_id)
        return [self._statement(r, key.open("customer_statements", "text_ct", r.id,
                                            r.text_ct).decode()) for r in rows]

    @staticmethod
    def _statement(row: CustomerStatement, text: str) -> dict[str, Any]:
        return {"id": row.id, "customer_id": row.customer_id,
                "concerns": row.fields.split(",") if row.fields else [], "text": text,
                "added_at": rfc3339(row.added_at), "added_by": row.added_by}

    def retain(self, session: Session, customer_id: str, *, purpose: str, legal_basis: str,
               fields: Sequence[str], hold_until: datetime, actor: audit.Actor) -> list[str]:
        """Before erasure: copy the fields a legal duty requires us to keep under the
        customer's legal-retention key, until ``hold_until``. Returns the fields kept."""
        row = self.get_row(session, customer_id)
        profile = self.profile(session, row, only=list(fields))
        kept = {k: v for k, v in profile.items() if k in fields and v is not None}
        if not kept:
            return []
        try:
            key = self.keyring.data_key(session, customer_id, LEGAL_RETENTION_CLASS)
        except KeyDestroyed:
            key = self.keyring.new_data_key(session, customer_id, LEGAL_RETENTION_CLASS)
        record_id = new_id()
        session.add(RetainedRecord(
            id=record_id, customer_id=customer_id, purpose=purpose, legal_basis=legal_basis,
            hold_until=hold_until, created_at=utcnow(),
            fields_ct=key.seal("retained_records", "fields_ct", record_id,
                               json.dumps(kept, sort_keys=True).encode())))
        audit.record(session, actor=actor, action="customer.retained", customer_id=customer_id,
                     details={"purpose": purpose, "fields": sorted(kept),
                              "hold_until": rfc3339(hold_until)})
        return sorted(kept)

    def purge_retained(self, session: Session, now: datetime, *, actor: audit.Actor) -> int:
        """Destroy retained data whose hold has ended (and its key once nothing is held)."""
        due = session.scalars(select(RetainedRecord).where(RetainedRecord.hold_until <= now)).all()
        customers = {r.customer_id for r in due}
        for record in due:
            session.delete(record)
        session.flush()
        for customer_id in customers:
            still = session.scalar(select(RetainedRecord.id).where(
                RetainedRecord.customer_id == customer_id).limit(1))
            if still is None:
                self.keyring.destroy_data_key(session, customer_id, LEGAL_RETENTION_CLASS)
            audit.record(session, actor=actor, action="customer.retention_ended",
                         customer_id=customer_id, details={"key_destroyed": still is None})
        return len(due)

    def crypto_shred(self, session: Session, customer_id: str, *, actor: audit.Actor,
                     request_id: str | None = None) -> bool:
        """Erase a customer by destroying their data key.

        Deletes the data key and blind indexes, drops the ciphertexts and marks the
        customer ``erased``. Copies of the ciphertexts elsewhere (backups) can no longer
        be decrypted once the key store holds no copy of the key. Returns False when
        the customer was already erased. Callers commit.
        """
        row = self.get_row(session, customer_id, for_update=True)
        if row.status == "erased":
            return False
        self.keyring.destroy_data_key(session, row.id)
        for name in PERSONAL_FIELDS:
            setattr(row, f"{name}_ct", None)
        for name in INDEXED_FIELDS:
            setattr(row, f"{name}_bidx", None)
        now = utcnow()
        row.status = "erased"
        row.erased_at = now
        row.updated_at = now
        for hook in self.erasure_hooks:
            hook(session, row.id)
        session.flush()
        details: dict[str, object] = {"method": "crypto_shred"}
        if request_id:
            details["request_id"] = request_id
        audit.record(session, actor=actor, action="customer.erased", customer_id=row.id,
                     details=details)
        return True

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
        column = f"{TABLE}.{name}"
        lock_ids = sorted({
            zlib.crc32(name.encode() + b"|" + (known.get((name, value))
                                               or self.indexer.index(column, value)))
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
                bidx = known.get((name, value)) or self.indexer.index(f"{TABLE}.{name}", value)
                by_index.setdefault((name, bidx), set()).add(value)
        names = list(wanted)
        unchanged = (Customer.updated_at == Customer.created_at).label("unchanged")
        pairs = list(by_index)
        candidates: set[str] = set()
        for start in range(0, len(pairs), 500):
            chunk = pairs[start:start + 500]
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
        for start in range(0, len(ids), 500):
            for row in session.execute(select(*columns).where(
                    Customer.id.in_(ids[start:start + 500]))):
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

    def seal_new(self, key: DataKey, data: Mapping[str, Any]) -> dict[str, Any]:
        """The sealed columns and blind indexes of a new customer, without any I/O.

        ``data`` is normalised (Vault.normalise); ``key`` is the customer's fresh key.
        A bulk load seals in worker processes and inserts with
        privacy_hub.vault.bulk.insert_customers.
        """
        if not data.get("email"):
            raise InvalidCustomerData({"email": ["Missing data for required field."]})
        cid = key.customer_id
        row: dict[str, Any] = {"id": cid, "key_version": key.version}
        row.update(key.seal_row(TABLE, cid, {
            f"{name}_ct": encode_value(name, value)
            for name in PERSONAL_FIELDS if (value := data.get(name)) is not None}))
        for name in PERSONAL_FIELDS:
            row.setdefault(f"{name}_ct", None)
        for name in INDEXED_FIELDS:
            value = data.get(name)
            row[f"{name}_bidx"] = None if value is None else self.indexer.index(
                f"{TABLE}.{name}", value)
        return row
