"""Downstream systems' parts in a request (Art. 17(2), 19): every system is told of a
verified request, reports its part done or failed, and is asked again after a failure."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

import audit
from audit.clock import rfc3339, utcnow
from consent.domain_events import DomainEvent, emit
from dsar.lifecycle import add_history
from dsar.models import DataSubjectRequest, RequestHistory, RequestSystem, identifiers_label
from dsar.ports import Downstream, SubjectDirectory
from dsar.workflow import RequestStatus, RequestType, TransitionRefused


def tell_systems(session: Session, req: DataSubjectRequest, customer_id: str,
                 directory: SubjectDirectory, downstream: Downstream) -> None:
    """Announce the verified request of ``customer_id`` (``request.created``) and give
    every system a part to report on."""
    # Systems learn of the request with the identifiers they match on (before an
    # erasure makes them unreadable).
    emit(session, DomainEvent("request.created",
                              _request_created(session, req, customer_id, directory),
                              customer_id=customer_id))
    # Every system is told (Art. 19) and its acknowledgement tracked.
    for system_id, name in downstream.systems(session):
        session.add(RequestSystem(request_id=req.id, system_id=system_id, system=name,
                                  status="pending", updated_at=utcnow()))
    session.flush()


def systems_with_part(session: Session, req: DataSubjectRequest) -> list[str]:
    """The names of the systems that have a part in the request."""
    return list(session.scalars(select(RequestSystem.system)
                                .where(RequestSystem.request_id == req.id)))


def retry(session: Session, req: DataSubjectRequest, part: RequestSystem, actor: audit.Actor,
          *, directory: SubjectDirectory, downstream: Downstream) -> None:
    """A DPO sends a system that failed its part the request again at once (rather than
    after the backoff); its part is pending again."""
    if req.status != RequestStatus.PROCESSING:
        raise TransitionRefused(f"a {req.status} request has no part to retry")
    if part.status != "failed":
        raise TransitionRefused("only a failed part can be retried")
    part.status = "pending"
    part.updated_at = utcnow()
    add_history(session, req, req.status, "system_retried", actor, note=part.system)
    ask_again(session, req, part, actor, directory=directory, downstream=downstream,
              attempt=0)


def ask_again(session: Session, req: DataSubjectRequest, part: RequestSystem,
              actor: audit.Actor, *, directory: SubjectDirectory,
              downstream: Downstream, attempt: int | None = None) -> None:
    """A system failed its part: send it the request again, later with each failure,
    until it reports done or a DPO closes the request. ``attempt`` 0: send it now."""
    failures = attempt if attempt is not None else session.scalar(
        select(func.count()).select_from(RequestHistory).where(
            RequestHistory.request_id == req.id, RequestHistory.event == "system_reported",
            RequestHistory.note == f"{part.system}: failed")) or 1
    cid = req.customer_id
    if cid is None:
        return
    if req.type == RequestType.ERASURE:
        if req.details_ct is None:
            return
        identifiers = json.loads(directory.open(session, None, identifiers_label(req.id),
                                                req.details_ct))
        event_type = "customer.erased"
        data: dict[str, Any] = {"customer_id": cid, "request_id": req.id,
                                "identifiers": identifiers}
    else:
        event_type = "request.created"
        data = _request_created(session, req, cid, directory)
    downstream.resend(session, system_id=part.system_id, event_type=event_type,
                      data=data, customer_id=cid, attempt=failures)
    audit.record(session, actor=actor, action="request.resent",
                 customer_id=cid, details={"request_id": req.id, "system": part.system,
                                           "event": event_type, "attempt": failures})


def _request_created(session: Session, req: DataSubjectRequest, customer_id: str,
                     directory: SubjectDirectory) -> dict[str, Any]:
    """The ``request.created`` domain event's data: the identifiers systems match on."""
    return {"request_id": req.id, "type": req.type, "customer_id": customer_id,
            "due_at": rfc3339(req.due_at),
            "identifiers": dict(directory.identifiers(session, customer_id))}
