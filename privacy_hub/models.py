"""Tables owned by the application layer itself: registered systems, idempotency records,
exports, sign-in links, staff, and when scheduled work last ran."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from audit.sql import UTCDateTime, new_metadata


class AppBase(DeclarativeBase):
    metadata = new_metadata()


class System(AppBase):
    """A downstream CRM service that calls the API with its own key."""

    __tablename__ = "systems"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    #: JSON list of scopes
    scopes: Mapped[str] = mapped_column(Text)
    #: JSON list of purpose keys the system is limited to, or NULL for all purposes
    purposes: Mapped[str | None] = mapped_column(Text)
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    #: sealed under the hub's app-secrets key; needed in clear to sign webhooks
    webhook_secret_ct: Mapped[bytes] = mapped_column(LargeBinary)
    #: public part of the API key, used to find the row
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    #: SHA-256 of the secret part of the API key (high-entropy, so a fast hash suffices)
    key_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class IdempotencyRecord(AppBase):
    """The first response to a write sent with an ``Idempotency-Key`` header."""

    __tablename__ = "idempotency_records"

    system_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    status_code: Mapped[int] = mapped_column(Integer)
    #: the response body, sealed (it may hold personal data); dropped when its customer is erased
    response_ct: Mapped[bytes] = mapped_column(LargeBinary)
    customer_id: Mapped[str | None] = mapped_column(String(36), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class ExportFile(AppBase):
    """The answer to an access or portability request: a ZIP, encrypted at rest."""

    __tablename__ = "exports"

    request_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(36), index=True)
    #: file name inside <instance>/exports/
    file: Mapped[str] = mapped_column(String(100))
    #: the file's random key, wrapped under the hub's app-secrets key
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: the subject's download link works until then (7 days)
    link_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: the file is deleted then (30 days)
    delete_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SignInLink(AppBase):
    """A customer's mailed portal sign-in link: only the SHA-256 of its token is kept."""

    __tablename__ = "portal_sign_in_links"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(36), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class StaffMember(AppBase):
    """A DPO, privacy agent, auditor or admin who signs in to the console.

    The password is kept as an argon2id hash, the TOTP secret sealed under the hub's
    app-secrets key, recovery codes as SHA-256 hashes (random and high-entropy, so a fast
    hash suffices). The address is the staff member's sign-in name: it is never logged and
    never written to the audit log, which names staff by id.
    """

    __tablename__ = "staff"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    #: lower-cased
    email: Mapped[str] = mapped_column(String(320), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    totp_secret_ct: Mapped[bytes] = mapped_column(LargeBinary)
    #: the last TOTP time step accepted: a code works once (RFC 6238 section 5.2)
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    #: set by the first sign-in with a code from the enrolled authenticator
    totp_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: JSON list of hex SHA-256 hashes of the unused recovery codes
    recovery_codes: Mapped[str] = mapped_column(Text)
    failed_sign_ins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ScheduledRun(AppBase):
    """When a piece of scheduled work (the daily retention pass) last started and ended,
    so that any number of workers, and their restarts, run it once per period: a worker
    runs it only if its conditional update of ``started_at`` wins (no personal data)."""

    __tablename__ = "scheduled_runs"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
