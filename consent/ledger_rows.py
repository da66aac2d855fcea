"""The ledger's writes: one ledger event row, the current-state row and the signed
receipt, as SQLAlchemy Core statements or straight on the driver's cursor.

No ORM unit of work: a decision is a few plain statements, and a group-committed batch
runs them while it holds the database's write lock.
"""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import Connection, Table, bindparam, insert, select, text, update
from sqlalchemy.orm import Session

from audit.prepared import Prepared, driver_cursor, time_reader
from consent.gate import Status
from consent.models import ConsentEvent, ConsentState, Receipt
from consent.purposes import Purpose
from consent.receipts import Controller, ReceiptFacts, ReceiptSigner, build, sign

_EVENTS = cast(Table, ConsentEvent.__table__)
_STATES = cast(Table, ConsentState.__table__)
_RECEIPTS = cast(Table, Receipt.__table__)
_CURRENT = (select(ConsentState.status, ConsentState.purpose_version, ConsentState.expires_at,
                   ConsentState.last_event_id, ConsentState.updated_at)
            .where(ConsentState.customer_id == bindparam("customer_id"),
                   ConsentState.purpose == bindparam("purpose"))
            .with_for_update())
_UPDATE_STATE = update(_STATES).where(_STATES.c.customer_id == bindparam("customer_id_"),
                                      _STATES.c.purpose == bindparam("purpose_"))
_STATE_VALUES = ("status", "purpose_version", "granted_at", "expires_at", "source",
                 "last_event_id", "receipt_id", "notice_version", "updated_at")
# PostgreSQL: writers of one customer's consent queue here before they read the current
# state. ``FOR UPDATE`` alone locks nothing while a purpose has no state row yet, so two
# first decisions would both read "none" and the second insert would fail on the primary
# key. The two-key form is a key space apart from the vault's one-key identifier locks.
_LOCK_SPACE = zlib.crc32(b"consent_state") - 2**31
_LOCK = text("SELECT pg_advisory_xact_lock(CAST(:space AS integer), CAST(:key AS integer))")
_LOCK_RAW = Prepared(_LOCK)
# The writes of a group-committed decision (Ledger.record_on), straight on the driver's
# cursor: SQLAlchemy's execution path costs more than the statements, under the write lock.
_CURRENT_RAW = Prepared(_CURRENT)
_INSERT_EVENT_RAW = Prepared(insert(_EVENTS))
_INSERT_STATE_RAW = Prepared(insert(_STATES))
_UPDATE_STATE_RAW = Prepared(
    update(_STATES).where(_STATES.c.customer_id == bindparam("customer_id_"),
                          _STATES.c.purpose == bindparam("purpose_"))
    .values({name: bindparam(f"v_{name}", type_=_STATES.c[name].type)
             for name in _STATE_VALUES}))
_INSERT_RECEIPT_RAW = Prepared(insert(_RECEIPTS))


class LedgerRow(NamedTuple):
    """A ledger event as inserted (consent_events' columns)."""

    id: str
    customer_id: str
    purpose: str
    purpose_version: int
    event_type: str
    granted: bool
    status: str
    consent_type: str
    source: str
    collection_method: str
    notice_version: str | None
    notice_language: str | None
    notice_sha256: str | None
    evidence_sha256: str | None
    collected_at: datetime
    recorded_at: datetime
    expires_at: datetime | None
    actor_type: str
    actor_id: str | None
    receipt_id: str


class CurrentState(NamedTuple):
    """The current-state row as ``current_state`` reads it."""

    status: str
    purpose_version: int
    expires_at: datetime | None
    last_event_id: str
    updated_at: datetime | None


def _lock_key(customer_id: str) -> dict[str, int]:
    return {"space": _LOCK_SPACE, "key": zlib.crc32(customer_id.encode()) - 2**31}


def current_state(session: Session, customer_id: str, purpose: str) -> Any:
    """The current-state row (status, purpose_version, expires_at, last_event_id,
    updated_at), or None; on PostgreSQL the customer's consent stays locked for the rest
    of the transaction, whether or not the row exists yet."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_LOCK, _lock_key(customer_id))
    return session.execute(_CURRENT, {"customer_id": customer_id, "purpose": purpose}).first()


def current_state_raw(conn: Connection, customer_id: str, purpose: str) -> CurrentState | None:
    """``current_state`` on the driver's cursor (locked on PostgreSQL): SQLAlchemy's
    execution path costs several times the statement, and it runs while the batch holds
    the write lock."""
    dialect = conn.dialect
    cursor = driver_cursor(conn)
    if dialect.name == "postgresql":
        _LOCK_RAW.execute(cursor, dialect, _lock_key(customer_id))
    row = _CURRENT_RAW.execute(cursor, dialect, {"customer_id": customer_id,
                                                 "purpose": purpose}).fetchone()
    if row is None:
        return None
    status, version, expires_at, last_event_id, updated_at = row
    read = time_reader(dialect)
    return CurrentState(status, int(version), read(expires_at), last_event_id,
                        read(updated_at))


def after_current(current: Any, now: datetime) -> datetime:
    """``now``, or just after the event the current state holds when that is later: a
    writer that waited for another's lock (or runs on a machine whose clock is behind)
    records its event after that one, so the state is always the latest event."""
    last: datetime | None = None if current is None else current.updated_at
    if last is not None and now <= last:
        return last + timedelta(microseconds=1)
    return now


def signed_receipt(row: LedgerRow, purpose: Purpose, controller: Controller,
                   signer: ReceiptSigner) -> tuple[str, str]:
    """The receipt of this ledger event: its payload JSON and its JWS."""
    facts = ReceiptFacts(
        receipt_id=row.receipt_id, event_id=row.id, customer_id=row.customer_id,
        event_type=row.event_type, status=row.status, consent_type=row.consent_type,
        collection_method=row.collection_method, source=row.source,
        recorded_at=row.recorded_at, expires_at=row.expires_at,
        notice_version=row.notice_version, notice_language=row.notice_language,
        notice_sha256=row.notice_sha256, evidence_sha256=row.evidence_sha256)
    return sign(build(facts, purpose, controller), signer)


def write(conn: Session | Connection, current: Any, purpose: Purpose, status: Status,
          row: LedgerRow, receipt: tuple[str, str]) -> None:
    """Insert the ledger event, insert or update the current state (``current``: its row
    before, or None), insert the receipt (payload JSON, JWS)."""
    conn.execute(insert(_EVENTS), row._asdict())
    values = _state_values(purpose, status, row)
    if current is None:
        conn.execute(insert(_STATES), {"customer_id": row.customer_id,
                                       "purpose": purpose.key, **values})
    else:
        conn.execute(_UPDATE_STATE, {"customer_id_": row.customer_id,
                                     "purpose_": purpose.key, **values})
    conn.execute(insert(_RECEIPTS), _receipt_values(row, receipt))


def write_raw(conn: Connection, current: Any, purpose: Purpose, status: Status,
              row: LedgerRow, receipt: tuple[str, str]) -> None:
    """``write``'s statements on the connection's driver cursor."""
    cursor = driver_cursor(conn)
    dialect = conn.dialect
    _INSERT_EVENT_RAW.execute(cursor, dialect, row._asdict())
    values = _state_values(purpose, status, row)
    if current is None:
        _INSERT_STATE_RAW.execute(cursor, dialect, {"customer_id": row.customer_id,
                                                    "purpose": purpose.key, **values})
    else:
        _UPDATE_STATE_RAW.execute(cursor, dialect, {
            "customer_id_": row.customer_id, "purpose_": purpose.key,
            **{f"v_{k}": v for k, v in values.items()}})
    _INSERT_RECEIPT_RAW.execute(cursor, dialect, _receipt_values(row, receipt))


def _state_values(purpose: Purpose, status: Status, row: LedgerRow) -> dict[str, Any]:
    """The current-state row's values after ``row`` (every column but the key)."""
    now = row.recorded_at
    return {"status": str(status), "purpose_version": purpose.version,
            "granted_at": now if status is Status.GRANTED else None,
            "expires_at": row.expires_at, "source": row.source,
            "last_event_id": row.id, "receipt_id": row.receipt_id,
            "notice_version": row.notice_version, "updated_at": now}


def _receipt_values(row: LedgerRow, receipt: tuple[str, str]) -> dict[str, Any]:
    payload, jws = receipt
    return {"id": row.receipt_id, "event_id": row.id, "customer_id": row.customer_id,
            "payload": payload, "jws": jws, "created_at": row.recorded_at}
