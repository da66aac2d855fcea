"""Tables owned by the application layer itself: registered systems, idempotency records,
exports, sign-in links, staff, when scheduled work last ran, pending Art. 14 notices and
the versions of the records of processing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, Integer, LargeBinary, String, Text
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


class Disclosure(AppBase):
    """One disclosure of a customer's data to a registered system (Art. 15(1)(c), R-ACC-03):
    a purpose-bound read of fields or a delivered webhook naming the customer. Gate answers
    are the check log's rows (consent_checks), merged in when the log is read
    (privacy_hub/rights/disclosures.py). Names only: no personal value is kept here."""

    __tablename__ = "disclosures"
    __table_args__ = (
        Index("ix_disclosures_customer", "customer_id", "disclosed_at"),
        CheckConstraint("kind IN ('data_read', 'webhook')", name="kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(String(36))
    #: the receiving system's name (as the check log names it)
    system: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str | None] = mapped_column(String(100))
    #: "data_read" (GET /customers/{id}/data) or "webhook" (a delivered webhook)
    kind: Mapped[str] = mapped_column(String(16))
    #: JSON list of the field names disclosed (reads: the purpose's fields; webhooks: the
    #: personal fields the event carried), never their values
    fields: Mapped[str | None] = mapped_column(Text)
    #: webhooks: the event type, e.g. ``consent.changed``
    event_type: Mapped[str | None] = mapped_column(String(64))
    disclosed_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


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


class Art14Notice(AppBase):
    """R-DEAD-05, Art. 14: a customer whose data came from someone other than them (an
    import with a named source) and who has not yet been told so. The row goes when the
    notice is handed to the mail outbox; while it exists, the first direct-marketing use
    of their data sends it at once (privacy_hub/jobs/art14.py)."""

    __tablename__ = "art14_notices"

    customer_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    #: who the data came from, as the import named it (an organisation, never a person)
    source: Mapped[str] = mapped_column(String(100))
    obtained_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: Art. 14(3)(a): one month after the data was obtained, at the latest
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: the outbox job that sends it (privacy_hub.jobs.art14.ART14_NOTICE)
    job_id: Mapped[str] = mapped_column(String(36))
    #: set when a direct-marketing use brought the notice forward
    triggered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RopaVersion(AppBase):
    """One version of the records of processing (Art. 30(1), 5(2)): stored whenever the
    generated record differs from the last version (a purpose or system was created or
    changed, the configuration changed), never changed afterwards."""

    __tablename__ = "ropa_versions"

    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: SHA-256 of ``record``: the generated record without its generation time
    sha256: Mapped[str] = mapped_column(String(64))
    #: the record as JSON (canonical: sorted keys)
    record: Mapped[str] = mapped_column(Text)
    #: what changed it: purpose keys and system names, or the configuration at a start
    cause: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
