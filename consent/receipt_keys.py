"""The keys that verify receipts: the one signing now and every one retired before it.

Receipts are kept for as long as the ledger they prove (they are never deleted), so a
retired key stays published for as long as receipts it signed exist, which is always:
every receipt ever issued verifies offline with the JWKS alone. Only the public half of a
retired key is kept; its private half is destroyed when the key is rotated.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from consent.models import ReceiptKey
from consent.receipts import ReceiptSigner, jwk


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def register(session: Session, signer: ReceiptSigner, now: datetime) -> None:
    """Publish the signer's public key if it is not yet (idempotent, safe when several
    processes start at once)."""
    if session.get(ReceiptKey, signer.key_id) is not None:
        return
    values = {"key_id": signer.key_id, "public_key": _raw(signer.private_key.public_key()),
              "created_at": now, "retired_at": None}
    dialect = session.get_bind(ReceiptKey).dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(ReceiptKey).values(**values).on_conflict_do_nothing())


def rotate(session: Session, new: ReceiptSigner, now: datetime) -> list[str]:
    """Publish ``new`` and retire every other key still current; return the retired ids."""
    register(session, new, now)
    retired = list(session.scalars(
        select(ReceiptKey.key_id).where(ReceiptKey.retired_at.is_(None),
                                        ReceiptKey.key_id != new.key_id)))
    if retired:
        session.execute(update(ReceiptKey).where(ReceiptKey.key_id.in_(retired))
                        .values(retired_at=now))
    return retired


def jwks(session: Session) -> dict[str, Any]:
    """Every receipt key as a JWK set, the current one first."""
    rows = session.scalars(select(ReceiptKey).order_by(
        ReceiptKey.retired_at.is_not(None), ReceiptKey.created_at.desc()))
    return {"keys": [jwk(row.key_id, Ed25519PublicKey.from_public_bytes(row.public_key))
                     for row in rows]}
