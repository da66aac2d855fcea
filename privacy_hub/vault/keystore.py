"""The key store: versioned key-encryption keys, one random data key per customer, hub keys.

These tables may live in a separate database (``PRIVACY_HUB_KEYSTORE_URL``) so that
operators can back them up on a shorter retention than the data: once a customer's
data key is gone from the key store and its backups, every copy of their ciphertexts
is unreadable. Each wrapped key's associated data binds it to its row (``*_aad``), so
a wrapped key copied into another row does not unwrap.

The keys themselves are handled by privacy_hub/vault/keyring.py (customer and hub
keys), privacy_hub/vault/keks.py (key-encryption keys) and privacy_hub/vault/rotation.py.
"""

from __future__ import annotations

import struct
from datetime import datetime

from sqlalchemy import Connection, Integer, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from audit.sql import UTCDateTime, new_metadata
from privacy_hub.vault.crypto import length_prefixed

DEFAULT_CLASS = "default"
# Data kept under a legal retention duty is sealed under a key of its own class,
# which survives the erasure of the customer's default key until the duty ends.
LEGAL_RETENTION_CLASS = "legal_retention"


class KeystoreBase(DeclarativeBase):
    metadata = new_metadata()


class KeyEncryptionKey(KeystoreBase):
    """One version of the key that wraps customer and hub keys."""

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
    """A customer's data key of one class, wrapped; deleting it crypto-shreds the customer."""

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


def kek_aad(version: int) -> bytes:
    """The associated data of a key-encryption key wrapped by the root key."""
    return b"privacy-hub/kek|" + struct.pack(">I", version)


def dek_aad(customer_id: str, key_class: str, dek_version: int, kek_version: int) -> bytes:
    """The associated data of a customer's wrapped data key."""
    return (
        b"privacy-hub/dek|" + length_prefixed(customer_id) + length_prefixed(key_class)
        + struct.pack(">II", dek_version, kek_version)
    )


def hub_aad(name: str, kek_version: int) -> bytes:
    """The associated data of a wrapped hub key."""
    return b"privacy-hub/hub|" + length_prefixed(name) + struct.pack(">I", kek_version)


def keystore_connection(session: Session) -> Connection:
    """The session's connection to the key store (its own database, or the main one)."""
    return session.connection(bind_arguments={"mapper": CustomerKey})
