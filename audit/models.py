"""The audit tables: the chained entries, the head that serialises appends, checkpoints.

Customers are referred to by ``customer_id`` only, with no foreign key: erasing the vault
must never cascade into the log (DESIGN.md, "Layout").
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from audit.sql import UTCDateTime, new_metadata


class AuditBase(DeclarativeBase):
    metadata = new_metadata()


class AuditEntry(AuditBase):
    """One link of the chain. ``seq`` is dense and assigned at chaining, never by the DB."""

    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64), index=True)
    customer_id: Mapped[str | None] = mapped_column(String(36), index=True)
    # Canonical JSON text; the hash covers this exact string, so it is never re-encoded.
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    def __repr__(self) -> str:
        # No customer id or details: reprs end up in logs.
        return f"<AuditEntry {self.seq} {self.action}>"


class AuditHead(AuditBase):
    """The single row (id 1) holding the last seq and hash; writers lock it to append.

    It also holds the last entry's time and the last checkpoint's, so that the one locking
    read is all a writer needs before it appends (audit/head.py).
    """

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    #: ``recorded_at`` of entry ``seq`` (None: no entry yet)
    recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: ``signed_at`` of the latest checkpoint (None: none signed yet)
    checkpoint_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditCheckpoint(AuditBase):
    """An Ed25519 signature over ``(seq, hash, signed_at)``, to be kept elsewhere too."""

    __tablename__ = "audit_checkpoints"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    key_id: Mapped[str] = mapped_column(String(64))
    # base64url without padding, as in JWS.
    signature: Mapped[str] = mapped_column(Text)

    def __repr__(self) -> str:
        return f"<AuditCheckpoint {self.seq} {self.key_id}>"
