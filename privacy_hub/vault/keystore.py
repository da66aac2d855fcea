"""The key store: versioned key-encryption keys, one random data key per customer, hub keys.

These tables may live in a separate database (``PRIVACY_HUB_KEYSTORE_URL``) so that
operators can back them up on a shorter retention than the data: once a customer's
data key is gone from the key store and its backups, every copy of their ciphertexts
is unreadable.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import (
    Connection,
    Integer,
    LargeBinary,
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from audit.clock import utcnow
from audit.prepared import Prepared
from audit.sql import UTCDateTime, new_metadata
from privacy_hub.db import insert_many
from privacy_hub.vault import crypto
from privacy_hub.vault.errors import DecryptionError, KeyDestroyed, KeyMissing
from privacy_hub.vault.root import RootKey

DEFAULT_CLASS = "default"
# Data kept under a legal retention duty is sealed under a key of its own class,
# which survives the erasure of the customer's default key until the duty ends.
LEGAL_RETENTION_CLASS = "legal_retention"


class KeystoreBase(DeclarativeBase):
    metadata = new_metadata()


class KeyEncryptionKey(KeystoreBase):
    __tablename__ = "keystore_keks"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: wrapped by the root key; NULL once the version is retired and destroyed
    wrapped: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: "primary" wraps new keys; "active" still unwraps; "retired" is destroyed
    state: Mapped[str] = mapped_column(String(16))
    root_key_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CustomerKey(KeystoreBase):
    __tablename__ = "keystore_customer_keys"

    customer_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key_class: Mapped[str] = mapped_column(String(32), primary_key=True)
    dek_version: Mapped[int] = mapped_column(Integer)
    kek_version: Mapped[int] = mapped_column(Integer, index=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class HubKey(KeystoreBase):
    """Keys of the hub itself: the blind-index key, signing keys, the app data key."""

    __tablename__ = "keystore_hub_keys"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    kek_version: Mapped[int] = mapped_column(Integer, index=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


def _kek_aad(version: int) -> bytes:
    return b"privacy-hub/kek|" + struct.pack(">I", version)


def _lp(value: str) -> bytes:
    raw = value.encode()
    return struct.pack(">H", len(raw)) + raw


def _lp_field(value: str) -> bytes:
    """A length-prefixed part of a field's associated data, as crypto.field_aad builds it."""
    raw = value.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise ValueError("associated data component too long")
    return struct.pack(">H", len(raw)) + raw


def _dek_aad(customer_id: str, key_class: str, dek_version: int, kek_version: int) -> bytes:
    return (
        b"privacy-hub/dek|" + _lp(customer_id) + _lp(key_class)
        + struct.pack(">II", dek_version, kek_version)
    )


def _hub_aad(name: str, kek_version: int) -> bytes:
    return b"privacy-hub/hub|" + _lp(name) + struct.pack(">I", kek_version)


@dataclass(frozen=True)
class DataKey:
    """A customer's unwrapped data key, bound to that customer."""

    customer_id: str
    key_class: str
    version: int
    aead: AESGCM

    def seal(self, table: str, column: str, row_id: str, plaintext: bytes) -> bytes:
        return crypto.seal(self.aead, self.version, plaintext, table=table, column=column,
                           row_id=row_id, customer_id=self.customer_id)

    def open(self, table: str, column: str, row_id: str, blob: bytes) -> bytes:
        return crypto.open_(self.aead, blob, table=table, column=column, row_id=row_id,
                            customer_id=self.customer_id)

    def seal_row(self, table: str, row_id: str,
                 cells: Mapping[str, bytes]) -> dict[str, bytes]:
        """seal() of several cells (column: plaintext) of one row, for bulk loads.

        The very ciphertexts seal() makes (crypto's format and associated data), with
        what the cells share built once: about half the time of sealing them one by one.
        """
        head = bytes([crypto.FORMAT_V1]) + struct.pack(">I", self.version)
        table_part = head + _lp_field(table)
        row_part = _lp_field(row_id) + _lp_field(self.customer_id)
        nonces = os.urandom(crypto.NONCE_BYTES * len(cells))
        encrypt = self.aead.encrypt
        out: dict[str, bytes] = {}
        for i, (column, plaintext) in enumerate(cells.items()):
            nonce = nonces[i * crypto.NONCE_BYTES:(i + 1) * crypto.NONCE_BYTES]
            aad = table_part + _lp_field(column) + row_part
            out[column] = head + nonce + encrypt(nonce, plaintext, aad)
        return out


_SESSION_CACHE = "vault.data_keys"


def _cache(session: Session) -> dict[tuple[str, str], DataKey]:
    cache = session.info.get(_SESSION_CACHE)
    if cache is None:
        cache = session.info[_SESSION_CACHE] = {}
    return cache


# Built once and run on the session's connection: no SQL compilation, no cache key and no
# ORM execution path per call (the hot paths of every lookup and create).
_KEKS = cast(Table, KeyEncryptionKey.__table__)
_CUSTOMER_KEYS = cast(Table, CustomerKey.__table__)
_PRIMARY = (
    select(_KEKS.c.version).where(_KEKS.c.state == "primary").with_for_update(read=True)
)
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
_PRIMARY_RAW = Prepared(_PRIMARY)
_KEK_RAW = Prepared(select(_KEKS.c.wrapped).where(_KEKS.c.version == bindparam("version")))
_INSERT_CUSTOMER_KEY_RAW = Prepared(insert(_CUSTOMER_KEYS))

def _keystore(session: Session) -> Connection:
    """The session's connection to the key store (its own database, or the main one)."""
    return session.connection(bind_arguments={"mapper": CustomerKey})


class KeyRing:
    """Creates, unwraps, rotates and destroys keys.

    Unwrapped key-encryption keys are cached per process; customer data keys are
    cached only for the life of one session, so a shredded key never outlives the
    transaction that destroyed it in any process.
    """

    def __init__(self, root: RootKey) -> None:
        self.root = root
        self._keks: dict[int, AESGCM] = {}
        self._hub: dict[str, bytes] = {}
        self._lock = threading.Lock()

    # -- key-encryption keys -------------------------------------------------------
    def _kek(self, session: Session, version: int) -> AESGCM:
        kek = self._keks.get(version)
        if kek is not None:
            return kek
        row = session.get(KeyEncryptionKey, version)
        if row is None or row.wrapped is None:
            raise KeyMissing(f"key-encryption key version {version} is not available")
        kek = AESGCM(self.root.unwrap(row.wrapped, _kek_aad(version)))
        with self._lock:
            self._keks[version] = kek
        return kek

    def _primary(self, session: Session) -> tuple[int, AESGCM]:
        # Read from the database every time (one indexed row) and share-lock it, so a
        # rotation finishing in another process can never retire the version we wrap under.
        version = _keystore(session).execute(_PRIMARY).scalar_one_or_none()
        if version is None:
            raise KeyMissing("no primary key-encryption key: run `privacy-hub init`")
        return version, self._kek(session, version)

    def primary_on(self, cursor: Any, dialect: Any) -> tuple[int, AESGCM]:
        """_primary() through a driver cursor inside the caller's transaction (share-locked
        on PostgreSQL, as there)."""
        row = _PRIMARY_RAW.execute(cursor, dialect, {}).fetchone()
        if row is None:
            raise KeyMissing("no primary key-encryption key: run `privacy-hub init`")
        version = int(row[0])
        kek = self._keks.get(version)
        if kek is None:
            found = _KEK_RAW.execute(cursor, dialect, {"version": version}).fetchone()
            if found is None or found[0] is None:
                raise KeyMissing(f"key-encryption key version {version} is not available")
            kek = AESGCM(self.root.unwrap(bytes(found[0]), _kek_aad(version)))
            with self._lock:
                self._keks[version] = kek
        return version, kek

    def store_data_key_on(self, cursor: Any, dialect: Any, key: DataKey, raw: bytes,
                          kek_version: int, kek: AESGCM) -> None:
        """store_data_key() through a driver cursor, under a primary read by primary_on()
        in the same transaction."""
        customer_id, key_class = key.customer_id, key.key_class
        _INSERT_CUSTOMER_KEY_RAW.execute(cursor, dialect, {
            "customer_id": customer_id, "key_class": key_class, "dek_version": key.version,
            "kek_version": kek_version, "created_at": utcnow(),
            "wrapped": crypto.wrap(kek, raw, _dek_aad(customer_id, key_class, key.version,
                                                      kek_version)),
        })

    def unwrap_row(self, customer_id: str, key_class: str, dek_version: int,
                   kek_version: int, wrapped: bytes) -> DataKey | None:
        """The data key in a key store row the caller read, not cached anywhere; None when
        its key-encryption key is not loaded in this process (e.g. after a rotation
        elsewhere): the caller then takes the session path, which loads it."""
        kek = self._keks.get(kek_version)
        if kek is None:
            return None
        raw = crypto.unwrap(kek, bytes(wrapped), _dek_aad(customer_id, key_class, dek_version,
                                                          kek_version))
        return DataKey(customer_id, key_class, dek_version, AESGCM(raw))

    def bootstrap(self, session: Session) -> bool:
        """Create the first key-encryption key and the hub keys if missing. Callers commit."""
        created = False
        if session.scalar(select(func.count()).select_from(KeyEncryptionKey)) == 0:
            self._add_kek(session, 1, "primary")
            created = True
        session.flush()
        return created

    def _add_kek(self, session: Session, version: int, state: str) -> None:
        raw = os.urandom(crypto.KEY_BYTES)
        session.add(KeyEncryptionKey(
            version=version, wrapped=self.root.wrap(raw, _kek_aad(version)), state=state,
            root_key_id=self.root.key_id, created_at=utcnow(),
        ))
        with self._lock:
            self._keks[version] = AESGCM(raw)

    def kek_status(self, session: Session) -> list[dict[str, object]]:
        rows = session.scalars(select(KeyEncryptionKey).order_by(KeyEncryptionKey.version))
        return [{"version": r.version, "state": r.state, "created_at": r.created_at,
                 "retired_at": r.retired_at} for r in rows]

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
        kek_version, kek = self._primary(session)
        customer_id, key_class = key.customer_id, key.key_class
        _keystore(session).execute(_INSERT_CUSTOMER_KEY, {
            "customer_id": customer_id, "key_class": key_class, "dek_version": key.version,
            "kek_version": kek_version, "created_at": utcnow(),
            "wrapped": crypto.wrap(kek, raw, _dek_aad(customer_id, key_class, key.version,
                                                      kek_version)),
        })
        _cache(session)[(customer_id, key_class)] = key

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
        return self._primary(session)[0]

    def prepare_data_keys(self, kek_version: int, customer_ids: Sequence[str],
                          key_class: str = DEFAULT_CLASS
                          ) -> tuple[list[DataKey], list[dict[str, object]]]:
        """Fresh data keys and their wrapped rows for store_data_keys, without any I/O.

        A bulk load makes them in worker processes forked after primary_version loaded
        ``kek_version``; only the wrapped rows come back to be stored.
        """
        kek = self._keks.get(kek_version)
        if kek is None:
            raise KeyMissing(f"key-encryption key version {kek_version} is not loaded")
        dek_version, now = 1, utcnow()
        keys: list[DataKey] = []
        rows: list[dict[str, object]] = []
        for customer_id in customer_ids:
            raw = os.urandom(crypto.KEY_BYTES)
            keys.append(DataKey(customer_id, key_class, dek_version, AESGCM(raw)))
            rows.append({
                "customer_id": customer_id, "key_class": key_class, "dek_version": dek_version,
                "kek_version": kek_version, "created_at": now,
                "wrapped": crypto.wrap(kek, raw, _dek_aad(customer_id, key_class, dek_version,
                                                          kek_version)),
            })
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
        insert_many(_keystore(session), _CUSTOMER_KEYS, rows)  # one executemany
        return True

    def data_key(self, session: Session, customer_id: str,
                 key_class: str = DEFAULT_CLASS) -> DataKey:
        """The customer's data key; KeyDestroyed once it has been shredded."""
        cached = _cache(session).get((customer_id, key_class))
        if cached is not None:
            return cached
        for attempt in range(2):
            row = _keystore(session).execute(
                _KEY_OF, {"customer_id": customer_id, "key_class": key_class}).first()
            if row is None:
                raise KeyDestroyed(f"data key of customer {customer_id} does not exist")
            try:
                kek = self._kek(session, row.kek_version)
            except KeyMissing:
                # A rotation may have re-wrapped this key and retired the old version
                # between our read and now: read the row again once.
                if attempt == 0:
                    session.expire_all()
                    continue
                raise
            raw = crypto.unwrap(
                kek, row.wrapped, _dek_aad(customer_id, key_class, row.dek_version, row.kek_version)
            )
            key = DataKey(customer_id, key_class, row.dek_version, AESGCM(raw))
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
            rows = _keystore(session).execute(_KEYS_OF, {"ids": chunk, "key_class": key_class})
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
            kek = self._kek(session, kek_version)
        except KeyMissing:  # re-wrapped by a rotation since the caller read it
            return self.data_key(session, customer_id, key_class)
        raw = crypto.unwrap(kek, wrapped, _dek_aad(customer_id, key_class, dek_version,
                                                   kek_version))
        key = cache[(customer_id, key_class)] = DataKey(customer_id, key_class, dek_version,
                                                        AESGCM(raw))
        return key

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
    def hub_key(self, session: Session, name: str, *, create: bool = False) -> bytes:
        """A named 32-byte key of the hub (cached per process)."""
        cached = self._hub.get(name)
        if cached is not None:
            return cached
        row = session.get(HubKey, name)
        if row is None:
            if not create:
                raise KeyMissing(f"hub key {name!r} is missing: run `privacy-hub init`")
            kek_version, kek = self._primary(session)
            raw = os.urandom(crypto.KEY_BYTES)
            session.add(HubKey(name=name, kek_version=kek_version,
                               wrapped=crypto.wrap(kek, raw, _hub_aad(name, kek_version)),
                               created_at=utcnow()))
            session.flush()
        else:
            raw = crypto.unwrap(self._kek(session, row.kek_version), row.wrapped,
                                _hub_aad(name, row.kek_version))
        with self._lock:
            self._hub[name] = raw
        return raw

    # -- rotation ------------------------------------------------------------------
    def rotate(self, factory: sessionmaker[Session], *, batch_size: int = 500,
               progress: Callable[[int, int], None] | None = None) -> int:
        """Add a new primary key-encryption key, re-wrap every key under it in batches,
        then retire and destroy the old versions. Reads keep working throughout."""
        with factory.begin() as session:
            current = session.scalar(select(func.max(KeyEncryptionKey.version))) or 0
            new_version = current + 1
            session.execute(update(KeyEncryptionKey).where(KeyEncryptionKey.state == "primary")
                            .values(state="active"))
            self._add_kek(session, new_version, "primary")
        total = 0
        with factory() as session:
            remaining = session.scalar(select(func.count()).select_from(CustomerKey)
                                       .where(CustomerKey.kek_version != new_version)) or 0
        while True:
            with factory.begin() as session:
                done = self._rewrap_batch(session, new_version, batch_size)
            total += done
            if progress:
                progress(total, remaining)
            if done == 0:
                break
        with factory.begin() as session:
            for row in session.scalars(select(HubKey).where(HubKey.kek_version != new_version)):
                raw = crypto.unwrap(self._kek(session, row.kek_version), row.wrapped,
                                    _hub_aad(row.name, row.kek_version))
                new_kek = self._kek(session, new_version)
                row.wrapped = crypto.wrap(new_kek, raw, _hub_aad(row.name, new_version))
                row.kek_version = new_version
        with factory.begin() as session:
            old = session.scalars(
                select(KeyEncryptionKey).where(KeyEncryptionKey.version != new_version,
                                               KeyEncryptionKey.state != "retired")
                .with_for_update()
            ).all()
            # Keys wrapped concurrently under an old version while we worked are re-wrapped
            # here, under the lock, before that version is destroyed.
            total += self._rewrap_batch(session, new_version, None)
            for kek_row in old:
                kek_row.state = "retired"
                kek_row.wrapped = None
                kek_row.retired_at = utcnow()
        with self._lock:
            for version in [v for v in self._keks if v != new_version]:
                del self._keks[version]
        return total

    def _rewrap_batch(self, session: Session, new_version: int, limit: int | None) -> int:
        stmt = select(CustomerKey).where(CustomerKey.kek_version != new_version)
        if limit is not None:
            stmt = stmt.limit(limit).with_for_update(skip_locked=True)
        rows = session.scalars(stmt).all()
        new_kek = self._kek(session, new_version)
        for row in rows:
            old_kek = self._kek(session, row.kek_version)
            try:
                raw = crypto.unwrap(old_kek, row.wrapped, _dek_aad(
                    row.customer_id, row.key_class, row.dek_version, row.kek_version))
            except DecryptionError:
                raise DecryptionError(
                    f"data key of customer {row.customer_id} does not authenticate"
                ) from None
            row.wrapped = crypto.wrap(new_kek, raw, _dek_aad(
                row.customer_id, row.key_class, row.dek_version, new_version))
            row.kek_version = new_version
        session.flush()
        return len(rows)
