"""Requests as the API, the portal and the console read them: the queue by deadline, and
each request with its systems' parts and its history."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from audit.clock import rfc3339, utcnow
from dsar.models import DataSubjectRequest, RequestHistory, RequestSystem
from dsar.workflow import FINAL

#: request ids per IN (...) query
_CHUNK = 500


def query(*, status: str | None = None, type: str | None = None, overdue: bool | None = None,
          now: datetime | None = None, after: tuple[str, str] | None = None
          ) -> Select[DataSubjectRequest]:
    """Requests by due date (soonest first), filtered; ``after``: the (due_at, id) of the
    last request of the previous page."""
    stmt = select(DataSubjectRequest)
    if status:
        stmt = stmt.where(DataSubjectRequest.status == status)
    if type:
        stmt = stmt.where(DataSubjectRequest.type == type)
    if overdue is not None:
        open_ = DataSubjectRequest.status.not_in([str(s) for s in FINAL])
        late = DataSubjectRequest.due_at < (now or utcnow())
        stmt = stmt.where(open_ & late) if overdue else stmt.where(~(open_ & late))
    if after is not None:
        due, rid = after
        stmt = stmt.where((DataSubjectRequest.due_at > due)
                          | ((DataSubjectRequest.due_at == due)
                             & (DataSubjectRequest.id > rid)))
    return stmt.order_by(DataSubjectRequest.due_at, DataSubjectRequest.id)


def public_many(session: Session, reqs: Sequence[DataSubjectRequest],
                now: datetime | None = None) -> list[dict[str, Any]]:
    """The API view of requests, with systems and history in two queries for all."""
    now = now or utcnow()
    ids = [r.id for r in reqs]
    systems: dict[str, list[RequestSystem]] = {i: [] for i in ids}
    history: dict[str, list[RequestHistory]] = {i: [] for i in ids}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        for s in session.scalars(select(RequestSystem).where(RequestSystem.request_id.in_(chunk))
                                 .order_by(RequestSystem.system)):
            systems[s.request_id].append(s)
        for h in session.scalars(select(RequestHistory).where(RequestHistory.request_id.in_(chunk))
                                 .order_by(RequestHistory.id)):
            history[h.request_id].append(h)
    return [_public(r, systems[r.id], history[r.id], now) for r in reqs]


def _public(req: DataSubjectRequest, systems: Sequence[RequestSystem],
            history: Sequence[RequestHistory], now: datetime) -> dict[str, Any]:
    return {
        "id": req.id, "type": req.type, "status": req.status,
        "customer_id": req.customer_id, "channel": req.channel,
        "received_at": rfc3339(req.received_at), "due_at": rfc3339(req.due_at),
        "extended": req.extension_months > 0, "extension_months": req.extension_months,
        "overdue": req.status not in {str(s) for s in FINAL} and now > req.due_at,
        "verified_at": rfc3339(req.verified_at),
        "verification_method": req.verification_method,
        "details": json.loads(req.details), "outcome": json.loads(req.outcome or "null"),
        "rejection_reason": req.rejection_reason,
        "rejection": None if req.rejection_ground is None else {
            "ground": req.rejection_ground, "reason": req.rejection_reason,
            "rejected_at": rfc3339(req.rejected_at)},
        "completed_at": rfc3339(req.completed_at),
        "systems": [{"system": s.system, "status": s.status,
                     "updated_at": rfc3339(s.updated_at)} for s in systems],
        "history": [{"event": h.event, "from_status": h.from_status,
                     "to_status": h.to_status, "at": rfc3339(h.at),
                     "actor": {"type": h.actor_type, "id": h.actor_id}, "note": h.note}
                    for h in history],
    }
