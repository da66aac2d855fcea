"""Data subject requests, their history, their status in each downstream system, and
the single-use verification links (stored only as hashes)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from audit.sql import UTCDateTime, new_metadata


class DsarBase(DeclarativeBase):
    """The dsar package's tables (its own metadata, the shared naming convention)."""

    metadata = new_metadata()


class DataSubjectRequest(DsarBase):
    """A request from a data subject (Art. 15-21), from receipt to its end."""

    __tablename__ = "requests"
    __table_args__ = (
        Index("ix_requests_status_due", "status", "due_at"),
        CheckConstraint("extension_months BETWEEN 0 AND 2", name="extension"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    #: access | portability | erasure | rectification | restriction | objection
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24))
    #: NULL while the requester is not (or cannot be) identified
    customer_id: Mapped[str | None] = mapped_column(String(36), index=True)
    #: api | portal | email | letter | phone | console
    channel: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    extension_months: Mapped[int] = mapped_column(Integer, default=0)
    extension_reason: Mapped[str | None] = mapped_column(Text)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    verification_method: Mapped[str | None] = mapped_column(String(40))
    #: JSON of the type's details without personal data (ground, purposes, changed fields)
    details: Mapped[str] = mapped_column(Text, default="{}")
    #: the details' personal data (e.g. rectified values), sealed by the application
    details_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: the requester's address while the request is unverified, sealed; dropped afterwards
    contact_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: JSON: what was done, and what was kept and why
    outcome: Mapped[str | None] = mapped_column(Text)
    #: Art. 12(4): why the request was refused (RejectionGround), the DPO's justification
    #: the subject is told, and when
    rejection_ground: Mapped[str | None] = mapped_column(String(32))
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    rejected_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RequestHistory(DsarBase):
    """One step in a request's life: who did what, when, from which status to which."""

    __tablename__ = "request_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(36), index=True)
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))
    #: e.g. "received", "verified", "extended", "rejected", "system_reported"
    event: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text)


class RequestSystem(DsarBase):
    """A downstream system's part in a request: pending until it reports done or failed."""

    __tablename__ = "request_systems"

    request_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    system_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    system: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: data the system sent back for an access request, sealed under the customer's key
    data_ct: Mapped[bytes | None] = mapped_column(LargeBinary)


class VerificationToken(DsarBase):
    """The single-use link that proves a requester controls the email address."""

    __tablename__ = "request_verification_tokens"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(36), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# The labels sealed columns are bound to (associated data): a sealed value copied into
# another request, or another column, does not open.
def details_label(request_id: str) -> str:
    """``DataSubjectRequest.details_ct`` while it holds the request's sealed details."""
    return f"request.{request_id}"


def identifiers_label(request_id: str) -> str:
    """``DataSubjectRequest.details_ct`` of an erasure while it keeps the erased customer's
    identifiers for the systems yet to report (sealed under the hub's key)."""
    return f"request.{request_id}.identifiers"


def system_data_label(request_id: str, system_id: str) -> str:
    """``RequestSystem.data_ct``: what a system sent back for an access request."""
    return f"request_system.{request_id}.{system_id}"
