"""Key-encryption keys: versioned, wrapped by the root key in the key store, unwrapped
and cached per process once used.

The primary version wraps new keys; older "active" versions still unwrap until a
rotation (privacy_hub/vault/rotation.py) has re-wrapped everything and retired them.
"""

from __future__ import annotations

import os
import threading
from typing import Any, cast

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine, Table, bindparam, func, select
from sqlalchemy.orm import Session

from audit.clock import utcnow
from audit.prepared import Prepared
from privacy_hub.vault import crypto
from privacy_hub.vault.errors import KeyMissing
from privacy_hub.vault.keystore import KeyEncryptionKey, kek_aad, keystore_connection
from privacy_hub.vault.root import RootKey

NO_PRIMARY = "no primary key-encryption key: run `privacy-hub init`"

_KEKS = cast(Table, KeyEncryptionKey.__table__)
# Built once (no SQL compilation per call): read on the hot paths of every create.
_PRIMARY = (
    select(_KEKS.c.version).where(_KEKS.c.state == "primary").with_for_update(read=True)
)
# The same, run through the driver on a connection the caller holds (hot paths).
_PRIMARY_RAW = Prepared(_PRIMARY)
_KEK_RAW = Prepared(select(_KEKS.c.wrapped).where(_KEKS.c.version == bindparam("version")))


def _missing(version: int) -> KeyMissing:
    return KeyMissing(f"key-encryption key version {version} is not available")


class KeyEncryptionKeys:
    """The key-encryption keys of this process: unwrapped on first use, then cached."""

    def __init__(self, root: RootKey) -> None:
        self.root = root
        self._loaded: dict[int, AESGCM] = {}
        self._lock = threading.Lock()

    def get(self, session: Session, version: int) -> AESGCM:
        """Version ``version``, unwrapped; KeyMissing once it is retired."""
        kek = self._loaded.get(version)
        if kek is not None:
            return kek
        row = session.get(KeyEncryptionKey, version)
        if row is None or row.wrapped is None:
            raise _missing(version)
        return self._keep(version, self.root.unwrap(row.wrapped, kek_aad(version)))

    def loaded(self, version: int) -> AESGCM | None:
        """Version ``version`` if this process has unwrapped it already (no I/O)."""
        return self._loaded.get(version)

    def primary(self, session: Session) -> tuple[int, AESGCM]:
        """The version that wraps new keys, and that key."""
        # Read from the database every time (one indexed row) and share-lock it, so a
        # rotation finishing in another process can never retire the version we wrap under.
        version = keystore_connection(session).execute(_PRIMARY).scalar_one_or_none()
        if version is None:
            raise KeyMissing(NO_PRIMARY)
        return version, self.get(session, version)

    def primary_on(self, cursor: Any, dialect: Any) -> tuple[int, AESGCM]:
        """primary() through a driver cursor inside the caller's transaction (share-locked
        on PostgreSQL, as there)."""
        row = _PRIMARY_RAW.execute(cursor, dialect, {}).fetchone()
        if row is None:
            raise KeyMissing(NO_PRIMARY)
        version = int(row[0])
        kek = self._loaded.get(version)
        if kek is None:
            found = _KEK_RAW.execute(cursor, dialect, {"version": version}).fetchone()
            if found is None or found[0] is None:
                raise _missing(version)
            kek = self._keep(version, self.root.unwrap(bytes(found[0]), kek_aad(version)))
        return version, kek

    def add(self, session: Session, version: int, state: str) -> None:
        """Store a fresh random key-encryption key as ``version``. Callers commit."""
        raw = os.urandom(crypto.KEY_BYTES)
        session.add(KeyEncryptionKey(
            version=version, wrapped=self.root.wrap(raw, kek_aad(version)), state=state,
            root_key_id=self.root.key_id, created_at=utcnow(),
        ))
        self._keep(version, raw)

    def bootstrap(self, session: Session) -> bool:
        """Create the first, primary, version if there is none. Callers commit."""
        created = False
        if session.scalar(select(func.count()).select_from(KeyEncryptionKey)) == 0:
            self.add(session, 1, "primary")
            created = True
        session.flush()
        return created

    def status(self, session: Session) -> list[dict[str, object]]:
        """Every version with its state and dates, oldest first."""
        rows = session.scalars(select(KeyEncryptionKey).order_by(KeyEncryptionKey.version))
        return [{"version": r.version, "state": r.state, "created_at": r.created_at,
                 "retired_at": r.retired_at} for r in rows]

    def forget_all_but(self, version: int) -> None:
        """Drop every other unwrapped version from this process (after a rotation)."""
        with self._lock:
            for old in [v for v in self._loaded if v != version]:
                del self._loaded[old]

    def _keep(self, version: int, raw: bytes) -> AESGCM:
        kek = AESGCM(raw)
        with self._lock:
            self._loaded[version] = kek
        return kek


def keys_exist(keystore: Engine) -> bool:
    """Whether the key store already holds key-encryption keys (wrapped by some root key)."""
    with keystore.connect() as conn:
        return bool(conn.scalar(select(func.count()).select_from(_KEKS)))
