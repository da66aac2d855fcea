"""Consent events chained into the audit log (R-CREC-03: tamper-evident consent history).

Each ledger event's audit entry carries the event's hash (``event_sha256`` in its
details): SHA-256 over the canonical JSON object of every column of the event row
(``LedgerRow``'s fields: who, when, what, the purpose version, the notice and the
evidence's SHA-256), times as RFC 3339 UTC with microseconds. The audit chain protects
the entry, so an edited event row no longer matches the hash its entry holds.

``verify_events`` re-hashes the stored rows, walking the audit log in seq order in
batches. Entries recorded before the hash was added are skipped and counted; a row that
is gone (deleted with an erased customer's records, under the retention rules) is
counted, not a break: what the chain proves is that no stored event was changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from audit.chain import canonical_json, format_time
from audit.models import AuditEntry
from consent.ledger_rows import LedgerRow
from consent.models import ConsentEvent

#: the audit details' key holding the event's hash
EVENT_HASH = "event_sha256"
#: the audit actions of ledger events (``consent.<event_type>``)
ACTION_PREFIX = "consent."

_EVENTS = cast(Table, ConsentEvent.__table__)
_EVENT_COLUMNS = tuple(_EVENTS.c[name] for name in LedgerRow._fields)
_ENTRIES = cast(Table, AuditEntry.__table__)


def event_hash(row: Mapping[str, Any]) -> str:
    """The SHA-256 (hex) of a ledger event's fields, as this module's docstring says."""
    fields = {name: _plain(row[name]) for name in LedgerRow._fields}
    return hashlib.sha256(canonical_json(fields).encode("utf-8")).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_time(value)
    return value


@dataclass(frozen=True)
class EventsReport:
    """What re-hashing the stored ledger events found. ``problem`` names ids and seqs only."""

    ok: bool
    #: events whose stored row matched the hash in their audit entry
    checked: int
    #: events whose audit entry holds no hash (recorded before R-CREC-03's chaining)
    unhashed: int
    #: hashed events no longer stored (deleted with an erased customer's records)
    missing: int
    first_bad_seq: int | None = None
    problem: str | None = None

    def public(self) -> dict[str, int]:
        """The counts, as the verification's answer shows them."""
        return {"checked": self.checked, "unhashed": self.unhashed, "missing": self.missing}


def verify_events(session: Session, *, upto: int | None = None,
                  batch_size: int = 2000) -> EventsReport:
    """Re-hash every stored ledger event named by an audit entry up to seq ``upto`` (all:
    None) and compare; the first that differs fails, named by its entry's seq."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    checked = unhashed = missing = 0
    after = 0
    while True:
        # The primary key in seq order, the action filtered here: an index on action
        # would be read whole for every batch.
        stmt = (select(_ENTRIES.c.seq, _ENTRIES.c.action, _ENTRIES.c.details)
                .where(_ENTRIES.c.seq > after).order_by(_ENTRIES.c.seq).limit(batch_size))
        if upto is not None:
            stmt = stmt.where(_ENTRIES.c.seq <= upto)
        rows = session.execute(stmt).all()
        if not rows:
            break
        after = int(rows[-1].seq)
        hashed: list[tuple[int, str, str]] = []
        for seq, action, details in rows:
            if not action.startswith(ACTION_PREFIX) or EVENT_HASH not in details:
                if action.startswith(ACTION_PREFIX) and '"event_id"' in details:
                    unhashed += 1
                continue
            values = json.loads(details)
            event_id, expected = values.get("event_id"), values.get(EVENT_HASH)
            if isinstance(event_id, str) and isinstance(expected, str):
                hashed.append((int(seq), event_id, expected))
        stored = _rows(session, [event_id for _, event_id, _ in hashed])
        for seq, event_id, expected in hashed:
            row = stored.get(event_id)
            if row is None:
                missing += 1
            elif event_hash(row) != expected:
                return EventsReport(False, checked, unhashed, missing, seq,
                                    f"consent event {event_id} does not match the hash in "
                                    f"audit entry {seq}: the stored row was changed")
            else:
                checked += 1
        if len(rows) < batch_size:
            break
    return EventsReport(True, checked, unhashed, missing)


def _rows(session: Session, ids: list[str]) -> dict[str, Any]:
    if not ids:
        return {}
    found = session.execute(select(*_EVENT_COLUMNS).where(_EVENTS.c.id.in_(ids)))
    return {row.id: row._mapping for row in found}
