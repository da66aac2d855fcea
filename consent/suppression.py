"""The suppression list (R-ERASE-05; Art. 17(3)(b), 21(3), 5(1)(c) GDPR): identifiers not to
be marketed to again, so that a re-import cannot bring back marketing to someone who was
erased or objected to it.

One entry per identifier: its keyed hash, the day it was listed and the reason. Nothing
else: no customer id, no identifier, no link to whom it was taken from. The hashes are
made by the application (privacy_hub/vault/suppression.py, under a hub key of their
own); this module only stores, matches, counts and deletes them, and keeps the flag the
gate reads (``processing_flags.suppressed``): set when a customer is made with a listed
identifier, so the gate's hot path reads a flag and never computes a hash.

A suppression is lifted by the customer's own fresh consent to direct marketing
(``lifts_suppression``): the flag is cleared and the entries of their identifiers are
deleted. Audit entries name counts and reasons only, never a hash or an identifier.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

from sqlalchemy import Table, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

import audit
from audit.clock import utcnow
from consent.flags import _add_flag_event, _flags_row
from consent.models import ProcessingFlags, SuppressionEntry
from consent.purposes import Purpose

ERASED = "erased"
OBJECTED_DIRECT_MARKETING = "objected_direct_marketing"
REASONS = (ERASED, OBJECTED_DIRECT_MARKETING)

#: Parts of a ``collection_method`` that say the consent reached the hub without the
#: customer acting at that moment (a CRM import, a partner feed, a bulk migration): such
#: a grant never lifts a suppression, since the list exists to stop exactly those sources.
NOT_THE_CUSTOMERS_OWN = ("import", "bulk", "feed", "migration")

_TABLE = cast(Table, SuppressionEntry.__table__)
#: hashes per statement (SQLite before 3.32 takes at most 999 parameters)
_CHUNK = 500


def own_consent(collection_method: str) -> bool:
    """Whether a decision collected this way was made by the customer themselves."""
    return not any(part in collection_method for part in NOT_THE_CUSTOMERS_OWN)


def lifts_suppression(purpose: Purpose, status: str, collection_method: str) -> bool:
    """A fresh consent of the customer's own to direct marketing: a decision that leaves a
    direct-marketing consent purpose ``granted`` (a double opt-in once confirmed), made by
    the customer (``own_consent``). Recorded after the suppression applied, as every
    decision of a customer flagged when made is."""
    return (purpose.direct_marketing and purpose.needs_consent and status == "granted"
            and own_consent(collection_method))


def _chunks(hashes: Sequence[bytes]) -> Iterable[Sequence[bytes]]:
    for start in range(0, len(hashes), _CHUNK):
        yield hashes[start:start + _CHUNK]


def add(session: Session, hashes: Sequence[bytes], *, reason: str,
        actor: audit.Actor) -> int:
    """List these identifier hashes for ``reason``; an entry already there takes the new
    reason and day. Returns how many are new. Audited without any customer id (the entry
    has no link to whom it came from). Callers commit."""
    if reason not in REASONS:
        raise ValueError(f"unknown suppression reason {reason!r}")
    unique = sorted(set(hashes))
    if not unique:
        return 0
    known = set(listed(session, unique))
    today = utcnow().date()
    insert = (postgresql.insert if session.get_bind().dialect.name == "postgresql"
              else sqlite.insert)(_TABLE)
    upsert = insert.on_conflict_do_update(
        index_elements=[_TABLE.c.identifier_hash],
        set_={"reason": insert.excluded.reason, "suppressed_on": insert.excluded.suppressed_on})
    session.execute(upsert, [{"identifier_hash": h, "suppressed_on": today, "reason": reason}
                             for h in unique])
    new = len(unique) - len(known)
    audit.record(session, actor=actor, action="suppression.added",
                 details={"reason": reason, "entries": len(unique), "new_entries": new})
    return new


def listed(session: Session, hashes: Sequence[bytes]) -> dict[bytes, str]:
    """The listed ones among these hashes, with their reasons."""
    out: dict[bytes, str] = {}
    for chunk in _chunks(list(hashes)):
        out.update((bytes(h), r) for h, r in session.execute(
            select(_TABLE.c.identifier_hash, _TABLE.c.reason)
            .where(_TABLE.c.identifier_hash.in_(chunk))))
    return out


def apply(session: Session, customer_id: str, reasons: Sequence[str], *,
          actor: audit.Actor) -> None:
    """A customer was just made with listed identifiers (``reasons``: one per listed
    entry): the gate denies them every direct-marketing purpose from now on. Callers
    commit."""
    row = _flags_row(session, customer_id)
    row.suppressed = True
    row.updated_at = utcnow()
    _add_flag_event(session, customer_id, "suppressed")
    audit.record(session, actor=actor, action="suppression.applied", customer_id=customer_id,
                 details={"entries": len(reasons), "reasons": sorted(set(reasons))})


def is_suppressed(session: Session, customer_id: str) -> bool:
    """Whether the gate denies this customer direct marketing for a suppression."""
    return bool(session.scalar(select(ProcessingFlags.suppressed)
                               .where(ProcessingFlags.customer_id == customer_id)))


def lift(session: Session, customer_id: str, hashes: Sequence[bytes], *, actor: audit.Actor,
         consent_event_id: str) -> int:
    """The customer consented to direct marketing themselves (``lifts_suppression``): clear
    their flag and delete the entries of their identifiers (``hashes``). Returns how many
    entries were deleted. Audited with the consent event that lifted it. Callers commit."""
    row = session.get(ProcessingFlags, customer_id, with_for_update=True)
    if row is None or not row.suppressed:
        return 0
    row.suppressed = False
    row.updated_at = utcnow()
    _add_flag_event(session, customer_id, "suppression_lifted")
    found = listed(session, hashes)
    for chunk in _chunks(list(found)):
        session.execute(delete(_TABLE).where(_TABLE.c.identifier_hash.in_(chunk)))
    audit.record(session, actor=actor, action="suppression.lifted", customer_id=customer_id,
                 details={"entries": len(found), "reasons": sorted(set(found.values())),
                          "consent_event_id": consent_event_id})
    return len(found)


def counts(session: Session) -> dict[str, int]:
    """How many entries the list holds, per reason (every reason, zero included)."""
    found: dict[str, int] = {reason: n for reason, n in session.execute(
        select(_TABLE.c.reason, func.count()).group_by(_TABLE.c.reason))}
    return {reason: int(found.get(reason, 0)) for reason in REASONS}
