"""Reading the log back: entries in order, and as the API and exports show them."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.clock import rfc3339
from audit.models import AuditEntry


def entries(
    session: Session,
    *,
    since_seq: int | None = None,
    action: str | None = None,
    customer_id: str | None = None,
    actor_type: str | None = None,
    before_seq: int | None = None,
    limit: int = 50,
) -> list[AuditEntry]:
    """Entries in ascending seq after ``since_seq``, optionally one action, customer or
    actor kind; with ``before_seq``, the last ``limit`` of those before it (still ascending)."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    stmt = select(AuditEntry)
    if since_seq is not None:
        stmt = stmt.where(AuditEntry.seq > since_seq)
    if before_seq is not None:
        stmt = stmt.where(AuditEntry.seq < before_seq)
    if action is not None:
        stmt = stmt.where(AuditEntry.action == action)
    if customer_id is not None:
        stmt = stmt.where(AuditEntry.customer_id == customer_id)
    if actor_type is not None:
        stmt = stmt.where(AuditEntry.actor_type == actor_type)
    if before_seq is not None:
        newest_first = session.scalars(stmt.order_by(AuditEntry.seq.desc()).limit(limit))
        return list(reversed(list(newest_first)))
    return list(session.scalars(stmt.order_by(AuditEntry.seq).limit(limit)))


def public_entry(entry: AuditEntry) -> dict[str, object]:
    """An entry as the API and exports show it."""
    details: object = json.loads(entry.details)
    return {
        "seq": entry.seq,
        "recorded_at": rfc3339(entry.recorded_at),
        "actor": {"type": entry.actor_type, "id": entry.actor_id},
        "action": entry.action,
        "customer_id": entry.customer_id,
        "details": details,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }
