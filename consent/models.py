"""Consent's tables: purposes and their versions, notices, the append-only ledger, the
current-state table, processing flags with their history, receipts, confirmation tokens.

Customers are referenced by id only, so erasing the vault never touches the ledger. The
evidence of each decision (``ConsentEvidence``) is kept apart, sealed under the customer's
key, and goes with their erasure or at the end of its retention (consent/proof.py).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, Index, Integer, LargeBinary, String, Text, false, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from audit.sql import UTCDateTime, new_metadata


class ConsentBase(DeclarativeBase):
    """The consent package's tables (its own metadata, the shared naming convention)."""

    metadata = new_metadata()


class PurposeRow(ConsentBase):
    """A registered purpose as stored; ``consent.purposes.Purpose`` is how code sees it."""

    __tablename__ = "purposes"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    #: GDPR Art. 6(1) basis; never changes after creation
    legal_basis: Mapped[str] = mapped_column(String(32))
    cookie_category: Mapped[str | None] = mapped_column(String(16))
    #: JSON list of customer fields this purpose may read
    fields: Mapped[str] = mapped_column(Text)
    retention_days: Mapped[int] = mapped_column(Integer)
    consent_lifetime_days: Mapped[int | None] = mapped_column(Integer)
    double_opt_in: Mapped[bool] = mapped_column(Boolean, default=False)
    direct_marketing: Mapped[bool] = mapped_column(Boolean, default=False)
    sale_or_sharing: Mapped[bool] = mapped_column(Boolean, default=False)
    special_category: Mapped[bool] = mapped_column(Boolean, default=False)
    #: ePrivacy Art. 13(2): email marketing of the shop's own similar products to its
    #: customers, without consent, until they object; fixed for life like the basis
    soft_opt_in: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    version: Mapped[int] = mapped_column(Integer, default=1)
    data_categories: Mapped[str] = mapped_column(Text)
    recipients: Mapped[str] = mapped_column(Text)
    lia_ref: Mapped[str | None] = mapped_column(String(500))
    dpv: Mapped[str | None] = mapped_column(String(200))
    #: further processing (Art. 6(4)): the purpose the data was first collected for
    source_purpose: Mapped[str | None] = mapped_column(String(100))
    #: where the compatibility assessment of that further processing is documented
    compatibility_ref: Mapped[str | None] = mapped_column(String(500))
    #: JSON {"de": {"title": ..., "description": ...}}: the texts in other languages
    #: (Art. 12(1)); title and description above stay the default text
    translations: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PurposeVersion(ConsentBase):
    """Every version of every purpose, as it was: the history behind receipts and the ROPA."""

    __tablename__ = "purpose_versions"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: a change that is not material keeps the version; each change is a new revision
    revision: Mapped[int] = mapped_column(Integer, primary_key=True)
    snapshot: Mapped[str] = mapped_column(Text)
    material: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Notice(ConsentBase):
    """A privacy notice's text in one version and language; never changed once published."""

    __tablename__ = "notices"

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    language: Mapped[str] = mapped_column(String(16), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConsentEvent(ConsentBase):
    """A ledger event: one consent decision as recorded. Rows are only ever inserted."""

    __tablename__ = "consent_events"
    __table_args__ = (Index("ix_consent_events_customer_purpose", "customer_id", "purpose",
                            "recorded_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(36))
    purpose: Mapped[str] = mapped_column(String(100))
    purpose_version: Mapped[int] = mapped_column(Integer)
    #: "grant", "refuse", "withdraw", "confirm", "expire", "gpc_refusal"
    event_type: Mapped[str] = mapped_column(String(24))
    granted: Mapped[bool] = mapped_column(Boolean)
    #: the state after this event: granted, refused, withdrawn, pending_confirmation
    status: Mapped[str] = mapped_column(String(24))
    consent_type: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(100))
    collection_method: Mapped[str] = mapped_column(String(40))
    notice_version: Mapped[str | None] = mapped_column(String(64))
    notice_language: Mapped[str | None] = mapped_column(String(16))
    notice_sha256: Mapped[str | None] = mapped_column(String(64))
    #: SHA-256 of the canonical JSON of the decision's evidence (consent/proof.py), which
    #: is kept apart in consent_evidence; NULL when none was collected
    evidence_sha256: Mapped[str | None] = mapped_column(String(64))
    collected_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(128))
    receipt_id: Mapped[str] = mapped_column(String(36), unique=True)


class ConsentEvidence(ConsentBase):
    """The evidence of one ledger event (R-CREC-06): the shop's UI details (GPC signal,
    hashed client address, user agent, page, banner choice), sealed under the customer's
    data key by the application (the ledger sees only ciphertext). The event keeps its
    SHA-256; this row loses its ciphertext when the consent's proof is no longer needed,
    or at once when the customer is erased, and then says when and why."""

    __tablename__ = "consent_evidence"
    __table_args__ = (
        # The few rows still to be sealed, found without a scan at every start.
        Index("ix_consent_evidence_legacy", "event_id",
              sqlite_where=text("legacy_json IS NOT NULL"),
              postgresql_where=text("legacy_json IS NOT NULL")),
    )

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(36), index=True)
    #: AES-256-GCM under the customer's key, bound to (consent_evidence, evidence_ct,
    #: event id, customer id); NULL once purged
    evidence_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: evidence recorded before revision 0019, moved here in clear by the migration; the
    #: hub seals it when it next starts (privacy_hub/vault/proof.py) and clears this
    legacy_json: Mapped[str | None] = mapped_column(Text)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: "retention" (its time ran out after the consent ended) or "erasure"
    purge_reason: Mapped[str | None] = mapped_column(String(16))


class ConsentState(ConsentBase):
    """The current consent state per customer and purpose (the outcome of the latest
    ledger event): the gate's one indexed read."""

    __tablename__ = "consent_state"
    __table_args__ = (
        # Audiences: a range of (purpose, "granted") in customer id order, with what the
        # gate checks in the index itself (version, expiry): no row lookups.
        Index("ix_consent_state_audience", "purpose", "status", "customer_id",
              "purpose_version", "expires_at"),
        # Checks: one customer's state for one purpose from the index alone, with the
        # ledger event, receipt and notice version the answer names (R-GATE-03).
        Index("ix_consent_state_check", "customer_id", "purpose", "status", "purpose_version",
              "expires_at", "last_event_id", "receipt_id", "notice_version"),
    )

    customer_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(100), primary_key=True)
    #: granted | refused | withdrawn | pending_confirmation
    status: Mapped[str] = mapped_column(String(24))
    purpose_version: Mapped[int] = mapped_column(Integer)
    granted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(100))
    last_event_id: Mapped[str] = mapped_column(String(36))
    #: the receipt of ``last_event_id`` and the notice version shown with it, kept here
    #: so that a check names them without a join (R-GATE-03); NULL only for a state whose
    #: ledger event is gone
    receipt_id: Mapped[str | None] = mapped_column(String(36))
    notice_version: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ProcessingFlags(ConsentBase):
    """Per-customer flags the gate honours: restriction (Art. 18), erasure, and the
    suppression list's match when the customer was made (consent/suppression.py)."""

    __tablename__ = "processing_flags"

    customer_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    restricted: Mapped[bool] = mapped_column(Boolean, default=False)
    restriction_ground: Mapped[str | None] = mapped_column(String(32))
    erased: Mapped[bool] = mapped_column(Boolean, default=False)
    #: an identifier was on the suppression list when the customer was made: every
    #: direct-marketing purpose is denied until they consent to direct marketing themselves
    suppressed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SuppressionEntry(ConsentBase):
    """One identifier (email or phone) not to be marketed to again (R-ERASE-05, Art. 17,
    21(3)): its keyed hash, the day it was listed and why. Nothing else, by design: no
    customer id, no identifier, no link to the person it was taken from."""

    __tablename__ = "suppression_list"

    #: HMAC-SHA256 of the normalised identifier under the hub's suppression key
    identifier_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    suppressed_on: Mapped[date] = mapped_column(Date)
    #: "erased" or "objected_direct_marketing"
    reason: Mapped[str] = mapped_column(String(32))


class CustomerRelationship(ConsentBase):
    """A customer who bought something (ePrivacy Art. 13(2): contact details obtained in
    the context of a sale), for purposes on the soft opt-in."""

    __tablename__ = "customer_relationships"

    customer_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    first_purchase_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_purchase_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Objection(ConsentBase):
    """An objection (Art. 21) to one purpose; purpose "*" is every direct-marketing purpose."""

    __tablename__ = "objections"

    customer_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(100), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: Art. 21(1): a DPO's documented compelling legitimate grounds (never for direct marketing)
    compelling_grounds: Mapped[str | None] = mapped_column(Text)
    grounds_recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    grounds_recorded_by: Mapped[str | None] = mapped_column(String(128))


class FlagEvent(ConsentBase):
    """One change of the processing flags or objections: their history, for answers
    about the past (``at=``)."""

    __tablename__ = "flag_events"
    __table_args__ = (Index("ix_flag_events_customer", "customer_id", "recorded_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(String(36))
    #: restricted | restriction_lifted | objected | grounds_recorded | erased | suppressed |
    #: suppression_lifted
    kind: Mapped[str] = mapped_column(String(24))
    purpose: Mapped[str | None] = mapped_column(String(100))
    detail: Mapped[str | None] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Receipt(ConsentBase):
    """The signed consent receipt of one ledger event."""

    __tablename__ = "consent_receipts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    customer_id: Mapped[str] = mapped_column(String(36), index=True)
    #: exactly the signed JSON (the JWS payload)
    payload: Mapped[str] = mapped_column(Text)
    jws: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReceiptKey(ConsentBase):
    """A public key that signed receipts. The private key of the current one is a hub key
    in the key store; retired ones keep only their public half, so receipts they signed
    still verify offline."""

    __tablename__ = "consent_receipt_keys"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: the raw 32-byte Ed25519 public key
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ConfirmationToken(ConsentBase):
    """Double opt-in: a single-use link, stored only as a hash."""

    __tablename__ = "consent_confirmation_tokens"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36))
    customer_id: Mapped[str] = mapped_column(String(36), index=True)
    purpose: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ConsentCheck(ConsentBase):
    """A log of gate answers (R-GATE-08): who asked about whom, for what, and the answer.

    Written in batches; each batch is sealed into the audit chain by its digest.
    """

    __tablename__ = "consent_checks"
    __table_args__ = (Index("ix_consent_checks_customer", "customer_id", "checked_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    system: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str | None] = mapped_column(String(36))
    purpose: Mapped[str] = mapped_column(String(100))
    allowed: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(24))
    #: "check", "batch", "audience", "data", or "events" (POST /api/v1/events: interaction
    #: events checked against the gate)
    via: Mapped[str] = mapped_column(String(16))


class BannerChoice(ConsentBase):
    """A shop visitor's answer to the cookie banner (ePrivacy Art. 5(3)), per category.

    The visitor is known only by a random id the banner made; the choice is linked to a
    customer when the shop says who signed in. Append-only, like the ledger.
    """

    __tablename__ = "banner_choices"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    visitor_id: Mapped[str] = mapped_column(String(36), index=True)
    #: JSON object: cookie category -> allowed (true/false); "necessary" is never asked
    categories: Mapped[str] = mapped_column(Text)
    notice_version: Mapped[str | None] = mapped_column(String(64))
    #: the browser sent Global Privacy Control: sale-or-sharing categories were refused
    gpc: Mapped[bool] = mapped_column(Boolean, default=False)
    #: "accept_all" | "reject_all" | "settings": which control of the banner was used
    action: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: asked again after this (at most 13 months, CNIL 2020-092)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    customer_id: Mapped[str | None] = mapped_column(String(36), index=True)
    linked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
