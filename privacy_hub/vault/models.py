"""The customer vault's tables. Every personal field is a ciphertext column.

Plain columns hold only what is not personal data on its own: the random id, the
status, key version, timestamps, and truncated blind indexes for exact lookups.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, LargeBinary, String, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from audit.sql import UTCDateTime, new_metadata


class VaultBase(DeclarativeBase):
    metadata = new_metadata()


#: Personal fields, each stored as ``<name>_ct`` under the customer's data key.
PERSONAL_FIELDS = (
    "external_id", "email", "phone", "first_name", "last_name", "birth_date", "locale",
    "address", "attributes",
)
#: Fields looked up through blind indexes.
INDEXED_FIELDS = ("external_id", "email", "phone")
#: Fields whose plaintext is JSON rather than a string.
JSON_FIELDS = ("address", "attributes")


class Customer(VaultBase):
    """A customer: each personal field sealed as ``<name>_ct``, identifiers blind-indexed."""

    __tablename__ = "customers"
    __table_args__ = (
        # Covers the gate's status reads by id (batches and audiences read only these two
        # columns of up to a million rows; privacy_hub/gate/checks.py CUSTOMERS_INDEX).
        Index("ix_customers_id_status", "id", "status"),
        # The erased customers alone (few): audiences of consents skip them with a probe
        # of this index rather than of every customer (privacy_hub/gate/checks.py).
        Index("ix_customers_erased", "id", sqlite_where=text("status = 'erased'"),
              postgresql_where=text("status = 'erased'")),
        # R-RET-02: the inactivity pass finds who has been inactive longest by it.
        Index("ix_customers_last_active_at", "last_active_at"),
        # ... and those it warned (few) by this one.
        Index("ix_customers_inactivity_notice_at", "inactivity_notice_at",
              sqlite_where=text("inactivity_notice_at IS NOT NULL"),
              postgresql_where=text("inactivity_notice_at IS NOT NULL")),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    #: active | restricted | erased
    status: Mapped[str] = mapped_column(String(16), default="active")
    #: version of the customer's data key the ciphertexts are sealed under
    key_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: R-RET-02: the customer's last purchase, portal sign-in, consent decision or request
    #: (privacy_hub/vault/activity.py); set when they are created
    last_active_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: when they were told that their inactive account will be erased; cleared by any
    #: activity (and by following the mail's "keep my account" link)
    inactivity_notice_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    external_id_bidx: Mapped[bytes | None] = mapped_column(LargeBinary(32), index=True)
    email_bidx: Mapped[bytes | None] = mapped_column(LargeBinary(32), index=True)
    phone_bidx: Mapped[bytes | None] = mapped_column(LargeBinary(32), index=True)

    external_id_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    email_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    phone_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    first_name_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    last_name_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    birth_date_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    locale_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    address_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    attributes_ct: Mapped[bytes | None] = mapped_column(LargeBinary)


class CustomerEvent(VaultBase):
    """An interaction (page view, cart add, purchase…), kept only if the gate allowed it.

    The event's type and properties are sealed under the customer's key, so erasure
    makes them unreadable with everything else.
    """

    __tablename__ = "customer_events"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(36), index=True)
    purpose: Mapped[str] = mapped_column(String(100))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: JSON {"type": ..., "properties": {...}} sealed under the customer's data key
    payload_ct: Mapped[bytes] = mapped_column(LargeBinary)


class CustomerStatement(VaultBase):
    """A supplementary statement (Art. 16): the subject's own account of data they hold
    incomplete or contested, attached by staff and shown in the access export.

    The text is sealed under the customer's key, so erasure makes it unreadable.
    """

    __tablename__ = "customer_statements"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(36), index=True)
    #: which fields it concerns (names, not values), e.g. "address"
    fields: Mapped[str | None] = mapped_column(String(400))
    text_ct: Mapped[bytes] = mapped_column(LargeBinary)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: the pseudonymous actor, e.g. "staff:dpo-1"
    added_by: Mapped[str] = mapped_column(String(160))


class CustomerTcString(VaultBase):
    """An IAB TCF TC string a CMP produced for the customer, stored verbatim (R-SIG-03).

    The string is sealed under the customer's key (a TC string can be personal data,
    CJEU C-604/22), so erasure makes it unreadable. The plain columns are its core
    segment's header: which CMP made it, when, against which vendor list and policy.
    """

    __tablename__ = "customer_tc_strings"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(36), index=True)
    #: the string exactly as given (ASCII), sealed under the customer's data key
    tc_string_ct: Mapped[bytes] = mapped_column(LargeBinary)
    tcf_version: Mapped[int] = mapped_column(Integer)
    cmp_id: Mapped[int] = mapped_column(Integer)
    cmp_version: Mapped[int] = mapped_column(Integer)
    #: two letters, e.g. "EN"
    consent_language: Mapped[str] = mapped_column(String(2))
    vendor_list_version: Mapped[int] = mapped_column(Integer)
    tcf_policy_version: Mapped[int] = mapped_column(Integer)
    #: the string's own Created and LastUpdated fields
    tc_created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    tc_updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: when the CMP collected it, as the caller says (optional)
    collected_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: the name of the system that sent it
    recorded_by: Mapped[str] = mapped_column(String(160))


class RetainedRecord(VaultBase):
    """Data kept after erasure under a legal retention duty (Art. 17(3)(b)).

    Sealed under the customer's key of the legal-retention class, which outlives the
    erasure of their default key until ``hold_until``; then both are destroyed.
    """

    __tablename__ = "retained_records"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(36), index=True)
    purpose: Mapped[str] = mapped_column(String(100))
    legal_basis: Mapped[str] = mapped_column(String(32))
    hold_until: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    #: JSON of the kept fields, sealed under the legal-retention key
    fields_ct: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
