"""The key ring: customer data keys (created, unwrapped, shredded) and the hub's own keys.

Customer data keys are cached only for the life of one session, so a shredded key never
outlives the transaction that destroyed it in any process; key-encryption keys and hub
keys are cached per process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Table, bindparam, delete, insert, select
from sqlalchemy.orm import Session, sessionmaker

from audit.clock import utcnow
from audit.prepared import Prepared
from privacy_hub.db import insert_many
from privacy_hub.vault import crypto, rotation
from privacy_hub.vault.errors import KeyDestroyed, KeyMissing
from privacy_hub.vault.keks import KeyEncryptionKeys
from privacy_hub.vault.keystore import (
    DEFAULT_CLASS,
    CustomerKey,
    HubKey,
    dek_aad,
    hub_aad,
    keystore_connection,
)
from privacy_hub.vault.root import RootKey


@dataclass(frozen=True)
class DataKey:
    """A customer's unwrapped data key, bound to that customer."""

    customer_id: str
    key_class: str
    version: int
    aead: AESGCM

    def seal(self, table: str, column: str, row_id: str, plaintext: bytes) -> bytes:
        """Encrypt one value for one cell of this customer."""
        return crypto.seal(self.aead, self.version, plaintext, table=table, column=column,
                           row_id=row_id, customer_id=self.customer_id)

    def open(self, table: str, column: str, row_id: str, blob: bytes) -> bytes:
        """Decrypt one cell of this customer (DecryptionError if it belongs elsewhere)."""
        return crypto.open_(self.aead, blob, table=table, column=column, row_id=row_id,
                            customer_id=self.customer_id)

    def seal_row(self, table: str, row_id: str,
                 cells: Mapping[str, bytes]) -> dict[str, bytes]:
        """seal() of several cells (column: plaintext) of one row, for bulk loads."""
        return crypto.seal_row(self.aead, self.version, cells, table=table, row_id=row_id,
                               customer_id=self.customer_id)


_SESSION_CACHE = "vault.data_keys"


def _cache(session: Session) -> dict[tuple[str, str], DataKey]:
    cache = session.info.get(_SESSION_CACHE)
    if cache is None:
        cache = session.info[_SESSION_CACHE] = {}
    return cache


# Built once and run on the session's connection: no SQL compilation, no cache key and no
# ORM execution path per call (the hot paths of every lookup and create).
_CUSTOMER_KEYS = cast(Table, CustomerKey.__table__)
_INSERT_CUSTOMER_KEY = insert(_CUSTOMER_KEYS)
_KEY_OF = select(_CUSTOMER_KEYS.c.dek_version, _CUSTOMER_KEYS.c.kek_version,
                 _CUSTOMER_KEYS.c.wrapped).where(
    _CUSTOMER_KEYS.c.customer_id == bindparam("customer_id"),
    _CUSTOMER_KEYS.c.key_class == bindparam("key_class"))
_KEYS_OF = select(_CUSTOMER_KEYS.c.customer_id, _CUSTOMER_KEYS.c.dek_version,
                  _CUSTOMER_KEYS.c.kek_version, _CUSTOMER_KEYS.c.wrapped).where(
    _CUSTOMER_KEYS.c.customer_id.in_(bindparam("ids", expanding=True)),
    _CUSTOMER_KEYS.c.key_class == bindparam("key_class"))
# The same, run through the driver on a connection the caller holds (hot paths).
_INSERT_CUSTOMER_KEY_RAW = Prepared(insert(_CUSTOMER_KEYS))


def _wrapped_row(key: DataKey, raw: bytes, kek_version: int, kek: AESGCM,
                 now: datetime) -> dict[str, object]:
    """The key store row of a data key, wrapped under ``kek``."""
    return {"customer_id": key.customer_id, "key_class": key.key_class,
            "dek_version": key.version, "kek_version": kek_version, "created_at": now,
            "wrapped": crypto.wrap(kek, raw, dek_aad(key.customer_id, key.key_class,
                                                     key.version, kek_version))}


def _unwrapped(kek: AESGCM, customer_id: str, key_class: str, dek_version: int,
               kek_version: int, wrapped: bytes) -> DataKey:
    raw = crypto.unwrap(kek, wrapped, dek_aad(customer_id, key_class, dek_version,
                                              kek_version))
    return DataKey(customer_id, key_class, dek_version, AESGCM(raw))


class KeyRing:
    """Creates, unwraps, rotates and destroys keys (see the module's docstring)."""

    def __init__(self, root: RootKey) -> None:
        self.keks = KeyEncryptionKeys(root)
        self._hub: dict[str, bytes] = {}
        self._lock = threading.Lock()

    # -- key-encryption keys -------------------------------------------------------
    def kek_status(self, session: Session) -> list[dict[str, object]]:
        """Every key-encryption key version with its state and dates."""
        return self.keks.status(session)

    def rotate(self, factory: sessionmaker[Session], *, batch_size: int = 500,
               progress: Callable[[int, int], None] | None = None) -> int:
        """privacy_hub/vault/rotation.py: a new primary key-encryption key, every key
        re-wrapped under it, the old versions destroyed. Reads keep working throughout."""
        return rotation.rotate(self.keks, factory, batch_size=batch_size, progress=progress)

    # -- customer data keys --------------------------------------------------------
    def new_data_key(self, session: Session, customer_id: str,
                     key_class: str = DEFAULT_CLASS) -> DataKey:
        """A fresh random data key for a customer, stored wrapped. Callers commit."""
        key, raw = self.generate_data_key(customer_id, key_class)
        self.store_data_key(session, key, raw)
        return key

    @staticmethod
    def generate_data_key(customer_id: str,
                          key_class: str = DEFAULT_CLASS) -> tuple[DataKey, bytes]:
        """A fresh random data key and its raw bytes for store_data_key, without any I/O
        (so a caller can seal with it before its transaction takes locks)."""
        raw = os.urandom(crypto.KEY_BYTES)
        return DataKey(customer_id, key_class, 1, AESGCM(raw)), raw

    def store_data_key(self, session: Session, key: DataKey, raw: bytes) -> None:
        """Store a key of generate_data_key, wrapped under the primary key-encryption key
        (read, share-locked, now). Callers commit."""
        kek_version, kek = self.keks.primary(session)
        keystore_connection(session).execute(
            _INSERT_CUSTOMER_KEY, _wrapped_row(key, raw, kek_version, kek, utcnow()))
        _cache(session)[(key.customer_id, key.key_class)] = key

    def store_data_key_on(self, cursor: Any, dialect: Any, key: DataKey, raw: bytes,
                          kek_version: int, kek: AESGCM) -> None:
        """store_data_key() through a driver cursor, under a primary read by
        ``keks.primary_on()`` in the same transaction."""
        _INSERT_CUSTOMER_KEY_RAW.execute(cursor, dialect,
                                         _wrapped_row(key, raw, kek_version, kek, utcnow()))

    def new_data_keys(self, session: Session, customer_ids: Sequence[str],
                      key_class: str = DEFAULT_CLASS) -> dict[str, DataKey]:
        """Fresh data keys for many new customers (bulk import). Callers commit.

        One read of the primary key-encryption key and one multi-row insert: calling
        new_data_key per customer costs a query and an ORM flush per key.
        """
        keys, rows = self.prepare_data_keys(self.primary_version(session), customer_ids,
                                            key_class)
        self.store_data_keys(session, rows)
        cache = _cache(session)
        for key in keys:
            cache[(key.customer_id, key_class)] = key
        return {key.customer_id: key for key in keys}

    def primary_version(self, session: Session) -> int:
        """The primary key-encryption key's version, now loaded for prepare_data_keys."""
        return self.keks.primary(session)[0]

    def prepare_data_keys(self, kek_version: int, customer_ids: Sequence[str],
                          key_class: str = DEFAULT_CLASS
                          ) -> tuple[list[DataKey], list[dict[str, object]]]:
        """Fresh data keys and their wrapped rows for store_data_keys, without any I/O.

        A bulk load makes them in worker processes forked after primary_version loaded
        ``kek_version``; only the wrapped rows come back to be stored.
        """
        kek = self.keks.loaded(kek_version)
        if kek is None:
            raise KeyMissing(f"key-encryption key version {kek_version} is not loaded")
        now = utcnow()
        keys: list[DataKey] = []
        rows: list[dict[str, object]] = []
        for customer_id in customer_ids:
            key, raw = self.generate_data_key(customer_id, key_class)
            keys.append(key)
            rows.append(_wrapped_row(key, raw, kek_version, kek, now))
        return keys, rows

    def store_data_keys(self, session: Session, rows: Sequence[Mapping[str, object]]) -> bool:
        """Store rows of prepare_data_keys in one insert. Callers commit.

        Returns False, storing nothing, when a rotation has made their key-encryption
        key version non-primary since: they must be prepared again. The primary is
        share-locked as in new_data_key, so it cannot be retired before we commit.
        """
        if not rows:
            return True
        primary = self.primary_version(session)
        if any(row["kek_version"] != primary for row in rows):
            return False
        insert_many(keystore_connection(session), _CUSTOMER_KEYS, rows)  # one executemany
        return True

    def data_key(self, session: Session, customer_id: str,
                 key_class: str = DEFAULT_CLASS) -> DataKey:
        """The customer's data key; KeyDestroyed once it has been shredded."""
        cached = _cache(session).get((customer_id, key_class))
        if cached is not None:
            return cached
        for attempt in range(2):
            row = keystore_connection(session).execute(
                _KEY_OF, {"customer_id": customer_id, "key_class": key_class}).first()
            if row is None:
                raise KeyDestroyed(f"data key of customer {customer_id} does not exist")
            try:
                kek = self.keks.get(session, row.kek_version)
            except KeyMissing:
                # A rotation may have re-wrapped this key and retired the old version
                # between our read and now: read the row again once.
                if attempt == 0:
                    session.expire_all()
                    continue
                raise
            key = _unwrapped(kek, customer_id, key_class, row.dek_version, row.kek_version,
                             row.wrapped)
            _cache(session)[(customer_id, key_class)] = key
            return key
        raise KeyMissing("unreachable")  # pragma: no cover

    def data_keys(self, session: Session, customer_ids: list[str],
                  key_class: str = DEFAULT_CLASS) -> dict[str, DataKey]:
        """Data keys of many customers in one query (lookups, bulk reads); shredded ones are absent."""
        cache = _cache(session)
        out: dict[str, DataKey] = {}
        missing = []
        for cid in customer_ids:
            hit = cache.get((cid, key_class))
            if hit is not None:
                out[cid] = hit
            else:
                missing.append(cid)
        for start in range(0, len(missing), 500):
            chunk = missing[start:start + 500]
            rows = keystore_connection(session).execute(
                _KEYS_OF, {"ids": chunk, "key_class": key_class})
            for row in rows.all():
                out[row.customer_id] = self.key_from_row(
                    session, row.customer_id, key_class, row.dek_version, row.kek_version,
                    row.wrapped)
        return out

    def key_from_row(self, session: Session, customer_id: str, key_class: str,
                     dek_version: int, kek_version: int, wrapped: bytes) -> DataKey:
        """The data key in a key store row read by the caller (e.g. joined to a query of
        customers), cached for the session like data_key's."""
        cache = _cache(session)
        hit = cache.get((customer_id, key_class))
        if hit is not None:
            return hit
        try:
            kek = self.keks.get(session, kek_version)
        except KeyMissing:  # re-wrapped by a rotation since the caller read it
            return self.data_key(session, customer_id, key_class)
        key = cache[(customer_id, key_class)] = _unwrapped(
            kek, customer_id, key_class, dek_version, kek_version, wrapped)
        return key

    def unwrap_row(self, customer_id: str, key_class: str, dek_version: int,
                   kek_version: int, wrapped: bytes) -> DataKey | None:
        """The data key in a key store row the caller read, not cached anywhere; None when
        its key-encryption key is not loaded in this process (e.g. after a rotation
        elsewhere): the caller then takes the session path, which loads it."""
        kek = self.keks.loaded(kek_version)
        if kek is None:
            return None
        return _unwrapped(kek, customer_id, key_class, dek_version, kek_version,
                          bytes(wrapped))

    def destroy_data_key(self, session: Session, customer_id: str,
                         key_class: str = DEFAULT_CLASS) -> bool:
        """Crypto-shred: delete the wrapped key and every cached copy. Callers commit."""
        _cache(session).pop((customer_id, key_class), None)
        result = session.execute(
            delete(CustomerKey).where(CustomerKey.customer_id == customer_id,
                                      CustomerKey.key_class == key_class)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    # -- hub keys ------------------------------------------------------------------
    def forget_hub_keys(self) -> None:
        """Drop the cached hub keys (a transaction that created one was rolled back)."""
        with self._lock:
            self._hub.clear()

    def hub_key(self, session: Session, name: str, *, create: bool = False) -> bytes:
        """A named 32-byte key of the hub (cached per process)."""
        cached = self._hub.get(name)
        if cached is not None:
            return cached
        row = session.get(HubKey, name)
        if row is None:
            if not create:
                raise KeyMissing(f"hub key {name!r} is missing: run `privacy-hub init`")
            kek_version, kek = self.keks.primary(session)
            raw = os.urandom(crypto.KEY_BYTES)
            session.add(HubKey(name=name, kek_version=kek_version,
                               wrapped=crypto.wrap(kek, raw, hub_aad(name, kek_version)),
                               created_at=utcnow()))
            session.flush()
        else:
            raw = crypto.unwrap(self.keks.get(session, row.kek_version), row.wrapped,
                                hub_aad(name, row.kek_version))
        with self._lock:
            self._hub[name] = raw
        return raw

    def replace_hub_key(self, session: Session, name: str) -> bytes:
        """Destroy the named hub key and put a new random one in its place (wrapped under
        the primary key-encryption key); return the new key. Call ``forget_hub_key`` once
        the transaction has committed."""
        row = session.get(HubKey, name)
        if row is None:
            raise KeyMissing(f"hub key {name!r} is missing: run `privacy-hub init`")
        kek_version, kek = self.keks.primary(session)
        raw = os.urandom(crypto.KEY_BYTES)
        row.kek_version = kek_version
        row.wrapped = crypto.wrap(kek, raw, hub_aad(name, kek_version))
        row.created_at = utcnow()
        session.flush()
        return raw

    def forget_hub_key(self, name: str) -> None:
        """Drop the process's cached copy of a hub key (it is read again when next used)."""
        with self._lock:
            self._hub.pop(name, None)
