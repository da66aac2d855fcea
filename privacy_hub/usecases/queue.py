"""The request queue as the console works it: the most urgent first, counts per state,
and one request with what a DPO needs beside the API's view (R-DEAD-03, R-AUD-04)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from audit.clock import utcnow
from dsar.deadlines import due_at
from dsar.models import DataSubjectRequest as Req
from dsar.reading import public_many
from dsar.workflow import FINAL, RequestStatus, RequestType
from privacy_hub.hub import Hub
from privacy_hub.rights.adapters import requests_service

#: a request due within this time is "due soon" (the DPO's first reminder, R-DEAD-03)
DUE_SOON = timedelta(days=7)
PAGE_SIZE = 50
#: the status filter's values besides each status: every request not yet over
OPEN = "open"
#: the due filter's values
DUE_FILTERS = ("overdue", "week")

_FINAL = [str(s) for s in FINAL]


@dataclass(frozen=True)
class QueuePage:
    """One page of the queue: its rows, whether more follow, and the page number."""

    items: list[dict[str, Any]]
    page: int
    more: bool


def _open() -> Any:
    return Req.status.not_in(_FINAL)


def counts(session: Session, *, now: datetime | None = None) -> dict[str, int]:
    """How many requests are in each status, how many are open, overdue and due within
    seven days."""
    now = now or utcnow()
    out = {str(s): 0 for s in RequestStatus}
    for status, n in session.execute(select(Req.status, func.count()).group_by(Req.status)):
        out[status] = n
    late = _open() & (Req.due_at < now)
    soon = _open() & (Req.due_at >= now) & (Req.due_at < now + DUE_SOON)
    row = session.execute(select(
        func.count().filter(late), func.count().filter(soon),
        func.count().filter(_open()))).one()
    out.update(overdue=row[0] or 0, week=row[1] or 0, open=row[2] or 0)
    return out


def queue(session: Session, *, type: str | None = None, status: str | None = None,
          due: str | None = None, page: int = 1, now: datetime | None = None) -> QueuePage:
    """Requests filtered by type, status (or ``open``) and due (``overdue``, ``week``):
    overdue first, then due within seven days, then the other open ones, then those that
    are over, each by due date."""
    now = now or utcnow()
    if type is not None and type not in {str(t) for t in RequestType}:
        raise ValueError("unknown request type")
    if status is not None and status != OPEN and status not in {str(s) for s in RequestStatus}:
        raise ValueError("unknown status")
    if due is not None and due not in DUE_FILTERS:
        raise ValueError("unknown due filter")
    page = max(page, 1)
    late = _open() & (Req.due_at < now)
    soon = _open() & (Req.due_at < now + DUE_SOON)
    stmt = select(Req)
    if type:
        stmt = stmt.where(Req.type == type)
    if status == OPEN:
        stmt = stmt.where(_open())
    elif status:
        stmt = stmt.where(Req.status == status)
    if due == "overdue":
        stmt = stmt.where(late)
    elif due == "week":
        stmt = stmt.where(soon & (Req.due_at >= now))
    rank = case((late, 0), (soon, 1), (_open(), 2), else_=3)
    stmt = (stmt.order_by(rank, Req.due_at, Req.id)
            .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1))
    rows = list(session.scalars(stmt))
    items = [_row(r, now) for r in rows[:PAGE_SIZE]]
    return QueuePage(items, page, len(rows) > PAGE_SIZE)


def time_left(due: datetime, now: datetime, *, final: bool) -> dict[str, Any] | None:
    """The whole days until ``due`` (``left``) or since (``overdue``); None once over."""
    if final:
        return None
    if now > due:
        return {"overdue": True, "days": (now - due).days}
    return {"overdue": False, "days": (due - now).days}


def _row(req: Req, now: datetime) -> dict[str, Any]:
    final = req.status in _FINAL
    return {"id": req.id, "type": req.type, "status": req.status, "channel": req.channel,
            "received_at": req.received_at, "due_at": req.due_at,
            "extended": req.extension_months > 0,
            "time_left": time_left(req.due_at, now, final=final)}


def detail(hub: Hub, session: Session, request_id: str, *, now: datetime | None = None
           ) -> dict[str, Any]:
    """One request for its console page: the API's view (systems, history) with its dates
    as datetimes, the extension's reason, the time left, and what may be done next."""
    now = now or utcnow()
    req = requests_service(hub).get(session, request_id)
    view = public_many(session, [req], now)[0]
    final = req.status in _FINAL
    view.update(
        received_at=req.received_at, due_at=req.due_at, verified_at=req.verified_at,
        completed_at=req.completed_at, extension_reason=req.extension_reason,
        time_left=time_left(req.due_at, now, final=final), final=final,
        rejected_at=req.rejected_at,
        # Art. 12(3): an extension is decided before this (the domain refuses it after)
        original_due_at=due_at(req.received_at, working_days=hub.working_days),
        has_export=req.type in (RequestType.ACCESS, RequestType.PORTABILITY)
        and req.status == RequestStatus.COMPLETED and req.customer_id is not None)
    for entry in view["history"]:
        entry["at"] = datetime.fromisoformat(entry["at"])
    for part in view["systems"]:
        part["updated_at"] = datetime.fromisoformat(part["updated_at"])
    return view
