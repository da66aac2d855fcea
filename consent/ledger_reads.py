"""Reading the consent ledger back: the current state per purpose, every event with what
is known of its evidence, the state at a past time, and receipts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.clock import rfc3339, utcnow
from consent import proof
from consent import purposes as registry
from consent.gate import Rule, State, effective_status
from consent.models import ConsentEvent, ConsentState, Receipt
from consent.proof import ProofKeys


def state_of(row: Any) -> State | None:
    """The gate's State of a current-state row (or None)."""
    if row is None:
        return None
    return State(row.status, row.purpose_version, row.expires_at)


def current_states(session: Session, customer_id: str,
                   now: datetime | None = None) -> list[dict[str, Any]]:
    """The current state for every purpose, as API.md describes it."""
    now = now or utcnow()
    rows = {r.purpose: r for r in session.scalars(
        select(ConsentState).where(ConsentState.customer_id == customer_id))}
    out = []
    for purpose in registry.all_purposes(session):
        row = rows.get(purpose.key)
        rule = Rule(purpose.key, purpose.legal_basis, purpose.version, purpose.direct_marketing)
        out.append({
            "purpose": purpose.key,
            "purpose_version": row.purpose_version if row else purpose.version,
            "legal_basis": str(purpose.legal_basis),
            "status": str(effective_status(rule, state_of(row), now)),
            "granted_at": rfc3339(row.granted_at) if row else None,
            "expires_at": rfc3339(row.expires_at) if row else None,
            "source": row.source if row else None,
        })
    return out


def history(session: Session, customer_id: str,
            keys: ProofKeys | None = None) -> list[dict[str, Any]]:
    """Every ledger event of the customer, oldest first, as the API shows them; their
    evidence opened with ``keys`` (without: None where it is held)."""
    events = list(session.scalars(select(ConsentEvent)
                                  .where(ConsentEvent.customer_id == customer_id)
                                  .order_by(ConsentEvent.recorded_at, ConsentEvent.id)))
    evidence = proof.read(session, customer_id, events, keys)
    return [event_public(e, evidence.get(e.id, proof.NONE)) for e in events]


def event_public(e: ConsentEvent, evidence: proof.Evidence) -> dict[str, Any]:
    """The API's JSON of a ledger event, with what is known of its evidence."""
    return {
        "id": e.id, "purpose": e.purpose, "purpose_version": e.purpose_version,
        "event_type": e.event_type, "granted": e.granted, "status": e.status,
        "consent_type": e.consent_type, "source": e.source,
        "collection_method": e.collection_method, "notice_version": e.notice_version,
        "notice_language": e.notice_language, "notice_sha256": e.notice_sha256,
        "evidence_sha256": e.evidence_sha256, **evidence.public(),
        "collected_at": rfc3339(e.collected_at),
        "recorded_at": rfc3339(e.recorded_at), "expires_at": rfc3339(e.expires_at),
        "actor": {"type": e.actor_type, "id": e.actor_id}, "receipt_id": e.receipt_id,
    }


def state_at(session: Session, customer_id: str, purpose: str, at: datetime) -> State | None:
    """The stored consent state as it stood at ``at``, replayed from the ledger."""
    event = session.scalars(
        select(ConsentEvent).where(ConsentEvent.customer_id == customer_id,
                                   ConsentEvent.purpose == purpose,
                                   ConsentEvent.recorded_at <= at)
        .order_by(ConsentEvent.recorded_at.desc(), ConsentEvent.id.desc()).limit(1)).first()
    if event is None:
        return None
    return State(event.status, event.purpose_version, event.expires_at, event.id,
                 event.receipt_id, event.notice_version)


def receipt(session: Session, receipt_id: str) -> Receipt | None:
    """The signed receipt of a ledger event, by its id."""
    return session.get(Receipt, receipt_id)
