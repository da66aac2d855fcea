"""Proof of consent (R-CREC-06): the evidence of each ledger event, kept apart from the
append-only ledger and only as long as it is needed.

A decision's evidence (the shop's UI details: GPC signal, hashed client address, user
agent, page, banner choice) is written to ``consent_evidence``, sealed under the
customer's data key. consent/ never sees a key: the application passes the ledger a
``ProofKeys`` (privacy_hub/vault/proof.py) that seals and opens. The ledger event keeps
the SHA-256 of the canonical evidence, and so do its audit entry (hash-chained) and its
signed receipt, so both still verify, and still name what was recorded, once the
evidence itself is gone.

Evidence is purged a configured time after the consent it proves ended: the decision
was superseded by a later one for the same purpose, it was a refusal or withdrawal, or it
expired. Evidence of a consent that may still be in force is never purged. An erasure
purges all of the customer's evidence at once (their key is destroyed with it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import Connection, Table, and_, exists, func, insert, or_, select, update
from sqlalchemy.orm import Session, aliased

import audit
from audit.clock import rfc3339
from audit.prepared import Prepared, driver_cursor
from consent.models import ConsentEvent, ConsentEvidence

#: the cell the evidence is sealed into (associated data: table, column, event id, customer)
TABLE, COLUMN = "consent_evidence", "evidence_ct"
RETENTION, ERASURE = "retention", "erasure"

#: (event id, canonical evidence) -> ciphertext, under one customer's key
Seal = Callable[[str, bytes], bytes]
#: (event id, ciphertext) -> canonical evidence; raises if it does not authenticate
Open = Callable[[str, bytes], bytes]

_EVIDENCE = cast(Table, ConsentEvidence.__table__)
_INSERT = insert(_EVIDENCE)
_INSERT_RAW = Prepared(_INSERT)
_BATCH = 500


class ProofKeys(Protocol):
    """The customer's data key, as the ledger needs it for evidence."""

    def sealer(self, session: Session, customer_id: str) -> Seal | None:
        """Seals under the customer's key; None when they have none (erased)."""

    def opener(self, session: Session, customer_id: str) -> Open | None:
        """Opens what the sealer sealed; None when the key is gone (erased)."""


def canonical(evidence: Mapping[str, Any]) -> bytes:
    """The evidence as it is sealed and hashed: sorted keys, no whitespace, UTF-8."""
    return json.dumps(dict(evidence), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def sha256_of(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def evidence_row(event_id: str, customer_id: str, raw: bytes, seal: Seal | None,
                 now: datetime) -> dict[str, Any]:
    """The consent_evidence row of a new event: sealed, or (no key: an erased customer)
    already purged."""
    if seal is None:
        return {"event_id": event_id, "customer_id": customer_id, "evidence_ct": None,
                "legacy_json": None, "purged_at": now, "purge_reason": ERASURE}
    return {"event_id": event_id, "customer_id": customer_id,
            "evidence_ct": seal(event_id, raw), "legacy_json": None, "purged_at": None,
            "purge_reason": None}


def insert_row(conn: Session | Connection, row: Mapping[str, Any], *, raw: bool = False) -> None:
    """Insert an evidence row (``raw``: on the connection's driver cursor, as the ledger's
    group-committed writes are)."""
    if raw and isinstance(conn, Connection):
        _INSERT_RAW.execute(driver_cursor(conn), conn.dialect, dict(row))
    else:
        conn.execute(_INSERT, dict(row))


# -- reading ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Evidence:
    """What is known of one event's evidence."""

    #: the evidence, {} when none was collected, None when purged or unreadable
    value: dict[str, Any] | None
    purged_at: datetime | None = None
    purge_reason: str | None = None
    #: it is stored but could not be opened (no key given, or it does not authenticate)
    unreadable: bool = False

    def public(self) -> dict[str, Any]:
        return {"evidence": self.value, "evidence_purged_at": rfc3339(self.purged_at),
                "evidence_purge_reason": self.purge_reason}


NONE = Evidence({})


def read(session: Session, customer_id: str, events: Sequence[ConsentEvent],
         keys: ProofKeys | None) -> dict[str, Evidence]:
    """The evidence of these events of one customer, by event id (opened with ``keys``;
    without, what is stored stays sealed and reads as None)."""
    wanted = [e.id for e in events if e.evidence_sha256 is not None]
    if not wanted:
        return {}
    rows: list[ConsentEvidence] = []
    for start in range(0, len(wanted), _BATCH):
        rows += session.scalars(select(ConsentEvidence).where(
            ConsentEvidence.event_id.in_(wanted[start:start + _BATCH]))).all()
    opener: Open | None = None
    if keys is not None and any(r.evidence_ct is not None for r in rows):
        opener = keys.opener(session, customer_id)
    out: dict[str, Evidence] = {}
    for r in rows:
        if r.evidence_ct is None and r.legacy_json is None:
            out[r.event_id] = Evidence(None, r.purged_at, r.purge_reason)
        elif r.evidence_ct is None:
            out[r.event_id] = Evidence(json.loads(r.legacy_json or "{}"))
        else:
            out[r.event_id] = _opened(opener, r)
    return out


def _opened(opener: Open | None, row: ConsentEvidence) -> Evidence:
    if opener is None or row.evidence_ct is None:
        return Evidence(None, unreadable=True)
    try:
        value = json.loads(opener(row.event_id, row.evidence_ct))
    except Exception:  # the vault's DecryptionError (a tampered or moved cell), bad JSON
        return Evidence(None, unreadable=True)
    return Evidence(value if isinstance(value, dict) else None)


# -- retention -------------------------------------------------------------------------
def _due(cutoff: datetime) -> Any:
    """Evidence still held whose consent ended at or before ``cutoff``: a refusal or a
    withdrawal (ended when made), a consent that expired, or any decision a later one
    for the same customer and purpose superseded."""
    e, later = ConsentEvent, aliased(ConsentEvent)
    superseded = exists().where(
        later.customer_id == e.customer_id, later.purpose == e.purpose,
        later.recorded_at <= cutoff,
        or_(later.recorded_at > e.recorded_at,
            and_(later.recorded_at == e.recorded_at, later.id > e.id)))
    ended = or_(and_(e.status.in_(("refused", "withdrawn")), e.recorded_at <= cutoff),
                and_(e.status == "granted", e.expires_at.is_not(None), e.expires_at <= cutoff),
                superseded)
    return (select(ConsentEvidence.event_id, ConsentEvidence.customer_id, e.purpose)
            .join(e, e.id == ConsentEvidence.event_id)
            .where(or_(ConsentEvidence.evidence_ct.is_not(None),
                       ConsentEvidence.legacy_json.is_not(None)), ended)
            .order_by(ConsentEvidence.event_id))


def purge_due(session: Session, now: datetime, cutoff: datetime, *, actor: audit.Actor,
              retention_days: int, limit: int = _BATCH) -> int:
    """Purge up to ``limit`` evidence rows whose consent ended at or before ``cutoff``;
    one audit entry per customer and purpose (counts only). Returns how many. Callers
    commit, and call again while it returns ``limit``."""
    due = session.execute(_due(cutoff).limit(limit)).all()
    groups: dict[tuple[str, str], list[str]] = {}
    for event_id, customer_id, purpose in due:
        groups.setdefault((customer_id, purpose), []).append(event_id)
    purged = 0
    for (customer_id, purpose), ids in groups.items():
        count = _purge(session, ids, now, RETENTION)
        purged += count
        if count:
            audit.record(session, actor=actor, action="consent.evidence_purged",
                         customer_id=customer_id,
                         details={"purpose": purpose, "events": count, "reason": RETENTION,
                                  "retention_days": retention_days})
    return purged


def count_due(session: Session, cutoff: datetime) -> int:
    """How many evidence rows ``purge_due`` would purge for ``cutoff`` (a dry run)."""
    return int(session.scalar(select(func.count()).select_from(_due(cutoff).subquery())) or 0)


def purge_customer(session: Session, customer_id: str, now: datetime, *,
                   actor: audit.Actor) -> int:
    """Erasure: purge every piece of the customer's evidence still held, at once (their
    key goes in the same transaction); one audit entry per purpose. Returns how many."""
    rows = session.execute(
        select(ConsentEvidence.event_id, ConsentEvent.purpose)
        .join(ConsentEvent, ConsentEvent.id == ConsentEvidence.event_id)
        .where(ConsentEvidence.customer_id == customer_id,
               ConsentEvidence.purged_at.is_(None))).all()
    groups: dict[str, list[str]] = {}
    for event_id, purpose in rows:
        groups.setdefault(purpose, []).append(event_id)
    purged = 0
    for purpose, ids in sorted(groups.items()):
        count = _purge(session, ids, now, ERASURE)
        purged += count
        if count:
            audit.record(session, actor=actor, action="consent.evidence_purged",
                         customer_id=customer_id,
                         details={"purpose": purpose, "events": count, "reason": ERASURE})
    return purged


def _purge(session: Session, event_ids: Sequence[str], now: datetime, reason: str) -> int:
    """Drop the ciphertext (and any unsealed legacy copy) of these rows, keeping when and
    why; rows already purged (by a concurrent run) are not counted."""
    result = session.execute(
        update(_EVIDENCE)
        .where(_EVIDENCE.c.event_id.in_(list(event_ids)), _EVIDENCE.c.purged_at.is_(None))
        .values(evidence_ct=None, legacy_json=None, purged_at=now, purge_reason=reason)
        .execution_options(synchronize_session=False))
    return int(result.rowcount)  # type: ignore[attr-defined]
