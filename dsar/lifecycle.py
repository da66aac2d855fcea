"""A stored request moving through the workflow (dsar/workflow.py): each step changes its
status and adds a line to its history and an entry to the audit log, in the caller's
transaction."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session

import audit
from audit.clock import utcnow
from dsar.models import DataSubjectRequest, RequestHistory
from dsar.workflow import Action, RequestStatus, Snapshot, next_status


def snapshot(req: DataSubjectRequest) -> Snapshot:
    """What the workflow's guards need to know about a stored request."""
    return Snapshot(RequestStatus(req.status), req.received_at, req.extension_months)


def move(session: Session, req: DataSubjectRequest, action: Action, actor: audit.Actor, *,
         event: str, note: str | None = None, reason: str | None = None,
         details: Mapping[str, str] | None = None) -> None:
    """Apply ``action`` (TransitionRefused if the workflow forbids it), with its history
    line ``event`` and the audit entry ``request.<event>`` (``details``: more of it, never
    personal data)."""
    target = next_status(snapshot(req), action, reason=reason)
    before = req.status
    req.status = str(target)
    req.updated_at = utcnow()
    add_history(session, req, before, event, actor, note=note or reason)
    audit.record(session, actor=actor, action=f"request.{event}", customer_id=req.customer_id,
                 details={"request_id": req.id, "type": req.type, "status": req.status,
                          **(details or {})})


def add_history(session: Session, req: DataSubjectRequest, before: str | None, event: str,
                actor: audit.Actor, *, note: str | None = None) -> None:
    """A line in the request's history (from ``before`` to its status now)."""
    session.add(RequestHistory(request_id=req.id, from_status=before, to_status=req.status,
                               event=event, at=utcnow(), actor_type=actor.kind,
                               actor_id=actor.id, note=note))
