"""The customer vault: create-or-update, lookup, read, rectify and crypto-shred customers.

Every personal field is sealed under the customer's own data key with associated data
that pins it to its cell. Domain functions take a session and never commit.

Vault is assembled from parts, each in its own module: reading (records.py), finding by
identifier (identifiers.py), supplementary statements (statements.py) and legal
retention (retention.py); this module writes and erases.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Engine, Table, insert, text
from sqlalchemy.orm import Session

import audit
from audit.clock import rfc3339, utcnow
from audit.ids import new_id
from audit.prepared import Prepared, driver_cursor
from privacy_hub.db import driver_reader
from privacy_hub.vault import cells
from privacy_hub.vault.cells import TABLE, encode_value, identifier_lock_id
from privacy_hub.vault.errors import (
    CustomerErased,
    DuplicateIdentifier,
    InvalidCustomerData,
    KeyDestroyed,
)
from privacy_hub.vault.identifiers import CustomerIdentifiers
from privacy_hub.vault.keyring import DataKey
from privacy_hub.vault.models import INDEXED_FIELDS, PERSONAL_FIELDS, Customer
from privacy_hub.vault.retention import LegalRetention
from privacy_hub.vault.statements import SupplementaryStatements
from privacy_hub.vault.suppression import SuppressionList

ErasureHook = Callable[[Session, str], None]

# Built once (compiled once) for the hot path of creates.
_INSERT_CUSTOMER = insert(cast(Table, Customer.__table__))
# The same, through the driver, for Vault.create_new.
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


@dataclass(frozen=True)
class _NewCustomer:
    """A new customer's key and sealed cells, made before its transaction (Vault.upsert)."""

    key: DataKey
    raw: bytes
    values: dict[str, Any]
    fields: dict[str, Any]
    field_names: list[str]


@dataclass
class Vault(CustomerIdentifiers, SupplementaryStatements, LegalRetention):
    """The customer vault (see the module's docstring); fields: keyring, indexer, hooks."""

    #: called inside the erasing transaction, e.g. to drop cached responses
    erasure_hooks: list[ErasureHook] = field(default_factory=list)
    #: R-ERASE-05: a customer made with a listed email or phone is flagged as made
    suppression: SuppressionList | None = None

    def normalise(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Normalise identifiers; raise InvalidCustomerData naming each bad field."""
        return cells.normalise(fields)

    def seal_new(self, key: DataKey, data: Mapping[str, Any]) -> dict[str, Any]:
        """The sealed columns and blind indexes of a new customer, without any I/O.

        ``data`` is normalised (Vault.normalise); ``key`` is the customer's fresh key.
        A bulk load seals in worker processes and inserts with
        privacy_hub.vault.bulk.insert_customers.
        """
        return cells.seal_new(self.indexer, key, data)

    # -- lookups -------------------------------------------------------------------
    def lookup(self, session: Session | None, *, actor: audit.Actor, email: str | None = None,
               phone: str | None = None, external_id: str | None = None,
               hot: HotPath | None = None,
               reason: Mapping[str, str] | None = None) -> list[str]:
        """Ids of the customers with exactly this identifier (one given); ``reason`` (the
        console's stated reason, no personal data) joins the audit entry's details.

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
                     details={**(reason or {}), "by": name, "matches": len(ids)})
        return ids

    def _lookup_hot(self, hot: HotPath, name: str, value: str, actor: audit.Actor) -> list[str]:
        with driver_reader(hot.read_engine) as (cursor, dialect):
            found = self._candidates_on(cursor, dialect, name, value)
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

    # -- writes --------------------------------------------------------------------
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
        locks = [identifier_lock_id(name, new.values[f"{name}_bidx"]) for name, _ in identifiers]
        customer_id = new.key.customer_id
        now = utcnow()
        row = {**new.values, "status": "active", "created_at": now, "updated_at": now,
               "erased_at": None, "last_active_at": now, "inactivity_notice_at": None}
        entry = audit.entry(actor, "customer.created", customer_id,
                                {"fields": new.field_names})
        listed = self.suppression.hashes(data) if self.suppression else []

        def work(conn: Any, shared: dict[str, Any]) -> tuple[bool, list[Any]]:
            cursor = driver_cursor(conn)
            dialect = conn.dialect
            if dialect.name == "postgresql":
                # As _lock_identifier: concurrent creates of one identifier serialise.
                for lock_id in locks:
                    _IDENTIFIER_LOCK_RAW.execute(cursor, dialect, {"k": lock_id})
            for name, value in identifiers:
                matches = self._candidates_on(cursor, dialect, name, value)
                if matches is None or matches:
                    return False, []  # exists (or needs a key not loaded here): upsert
            if listed and SuppressionList.listed_on(cursor, dialect, listed):
                return False, []  # to be flagged as it is made: upsert does that
            primary = shared.get("vault.primary_kek")
            if primary is None:
                primary = shared["vault.primary_kek"] = self.keyring.keks.primary_on(
                    cursor, dialect)
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
        return _NewCustomer(key, raw, values, cells.as_read_back(data), sorted(
            k for k, v in data.items() if k in PERSONAL_FIELDS and v is not None))

    def _create(self, session: Session, new: _NewCustomer, *,
                actor: audit.Actor) -> dict[str, Any]:
        self.keyring.store_data_key(session, new.key, new.raw)
        now = utcnow()
        values = {**new.values, "status": "active", "created_at": now, "updated_at": now,
                  "erased_at": None, "last_active_at": now, "inactivity_notice_at": None}
        # A Core insert: an ORM add and flush cost several times as much CPU.
        session.connection(bind_arguments={"mapper": Customer}).execute(_INSERT_CUSTOMER,
                                                                        values)
        customer_id = new.key.customer_id
        audit.record(session, actor=actor, action="customer.created", customer_id=customer_id,
                     details={"fields": new.field_names})
        if self.suppression is not None:
            self.suppression.screen(session, {customer_id: new.fields}, actor=actor)
        stamp = rfc3339(now)
        return {"id": customer_id, "status": "active", "created_at": stamp,
                "updated_at": stamp, **new.fields}

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
                setattr(row, f"{name}_bidx", cells.blind_index(self.indexer, name, value))

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

    # -- erasure -------------------------------------------------------------------
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
