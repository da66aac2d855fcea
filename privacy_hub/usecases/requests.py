"""Data subject requests: submit, verify, extend, reject, cancel, report, close, export,
preview the export, retry a failed system."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import audit
from audit.clock import rfc3339, utcnow
from dsar import fan_out
from dsar.models import DataSubjectRequest, RequestSystem
from dsar.requests import Requests
from dsar.workflow import RejectionGround
from privacy_hub.hub import Hub
from privacy_hub.models import System
from privacy_hub.rights import intake, third_party
from privacy_hub.rights.adapters import requests_service
from privacy_hub.rights.exports import ExportGone, Exports
from privacy_hub.usecases.errors import Conflict, Gone, NotFound, group_committed
from privacy_hub.vault import activity
from privacy_hub.vault.service import HotPath

#: how a system marks data about other people in its report (R-ACC-07), for the API
THIRD_PARTY_MARKING = third_party.DESCRIPTION

def _public(session: Session, req: DataSubjectRequest) -> dict[str, Any]:
    return Requests.public(session, req)


def submit(hub: Hub, session: Session, *, type: str, actor: audit.Actor,
           email: str | None = None, customer_id: str | None = None,
           details: Mapping[str, Any] | None = None, channel: str = "api",
           received_at: datetime | None = None, verified: bool = False,
           verification_method: str | None = None,
           language: str | None = None) -> dict[str, Any]:
    """Receive a request; an unknown email is accepted the same way and never completes.
    Returns its id, type, status, receipt and due dates, which the subject's
    acknowledgement mail says too (R-DSAR-02; ``language``: the one they asked in)."""
    req = requests_service(hub).submit(
        session, type=type, actor=actor, email=email, customer_id=customer_id,
        details=details, channel=channel, received_at=received_at, verified=verified,
        verification_method=verification_method, language=language)
    if req.customer_id is not None:
        activity.touch(session, req.customer_id, req.created_at)  # R-RET-02
    # Only the fields the answer has: the request's systems and history are not read.
    return {"id": req.id, "type": req.type, "status": req.status,
            "received_at": rfc3339(req.received_at), "due_at": rfc3339(req.due_at),
            "extended": req.extension_months > 0}


def submit_grouped(hub: Hub, hot: HotPath, *, type: str, actor: audit.Actor,
                   email: str | None = None, customer_id: str | None = None,
                   details: Mapping[str, Any] | None = None, channel: str = "api",
                   received_at: datetime | None = None,
                   language: str | None = None) -> dict[str, Any] | None:
    """``submit`` of a request still to be verified, in a short group-committed
    transaction (privacy_hub/rights/intake.py): the same rows, mails, audit entry and
    answer, durable before it returns. None, having changed nothing, when the request
    needs ``submit`` (verified at once, an objection, sealed details, an id that is not
    an active customer's)."""
    with group_committed():
        return intake.submit_grouped(hub, hot, type=type, actor=actor, email=email,
                                     customer_id=customer_id, details=details,
                                     channel=channel, received_at=received_at,
                                     language=language)


def get(hub: Hub, session: Session, request_id: str) -> dict[str, Any]:
    """One request, with each downstream system's status and the full history."""
    return _public(session, requests_service(hub).get(session, request_id))


def page(session: Session, *, status: str | None, type: str | None, overdue: bool | None,
         after: tuple[datetime, str] | None,
         limit: int) -> tuple[list[dict[str, Any]], tuple[datetime, str] | None]:
    """Requests by deadline, soonest first, after the position ``after``: the items and
    the position of the last one when more follow."""
    stmt = Requests.query(status=status, type=type, overdue=overdue,
                          after=after).limit(limit + 1)  # type: ignore[arg-type]
    rows = session.scalars(stmt).all()
    more = len(rows) > limit
    rows = rows[:limit]
    last = (rows[-1].due_at, rows[-1].id) if more else None
    return Requests.public_many(session, rows), last


def verify_with_token(hub: Hub, session: Session, request_id: str, token: str) -> dict[str, Any]:
    """The subject followed the emailed link: the request is verified."""
    req = requests_service(hub).verify_with_token(session, request_id, token)
    if req.customer_id is not None:
        activity.touch(session, req.customer_id, utcnow())  # R-RET-02
    return _public(session, req)


def verify(hub: Hub, session: Session, request_id: str, *, method: str,
           actor: audit.Actor) -> dict[str, Any]:
    """Staff verified the subject's identity another way (`method`)."""
    return _public(session, requests_service(hub).verify(session, request_id, method=method,
                                                         actor=actor))


def extend(hub: Hub, session: Session, request_id: str, *, months: int, reason: str,
           actor: audit.Actor) -> dict[str, Any]:
    """Extend by 1 or 2 months (Art. 12(3)); the subject is told why."""
    return _public(session, requests_service(hub).extend(session, request_id, months=months,
                                                         reason=reason, actor=actor))


def reject(hub: Hub, session: Session, request_id: str, *, reason: str, actor: audit.Actor,
           ground: str = RejectionGround.OTHER) -> dict[str, Any]:
    """Reject on a ground (dsar.workflow.RejectionGround) with a justification; the subject
    is told both, with their right to complain and to a judicial remedy (Art. 12(4))."""
    return _public(session, requests_service(hub).reject(session, request_id, ground=ground,
                                                         reason=reason, actor=actor))


def close_unidentified(hub: Hub, session: Session, request_id: str) -> bool:
    """R-DSAR-05: reject a request still waiting for its subject to be identified
    (``identity_not_found``); False when it had moved on."""
    return requests_service(hub).close_unidentified(session, request_id) is not None


def cancel(hub: Hub, session: Session, request_id: str, *, actor: audit.Actor,
           note: str | None = None) -> dict[str, Any]:
    """Cancel a request that is not completed."""
    return _public(session, requests_service(hub).cancel(session, request_id, actor=actor,
                                                         note=note))


def close(hub: Hub, session: Session, request_id: str, *, note: str,
          actor: audit.Actor) -> dict[str, Any]:
    """Complete the request with a note, although not every system reported done."""
    return _public(session, requests_service(hub).close(session, request_id, note=note,
                                                        actor=actor))


def report(hub: Hub, session: Session, request_id: str, *, system: str, status: str,
           data: Mapping[str, Any] | None, actor: audit.Actor) -> dict[str, Any]:
    """A downstream system reports its part (done or failed, and for access its data)."""
    system_id = session.scalar(select(System.id).where(System.name == system))
    if system_id is None:
        raise NotFound("No system with this name.")
    return _public(session, requests_service(hub).report(
        session, request_id, system_id=system_id, status=status, actor=actor, data=data))


def _archive(hub: Hub, session: Session, request_id: str) -> tuple[DataSubjectRequest, bytes]:
    req = requests_service(hub).get(session, request_id)
    if req.type not in ("access", "portability") or req.status != "completed":
        raise Conflict("Only a completed access or portability request has an export.",
                       type_="no-export")
    try:
        return req, Exports(hub).read(session, request_id)
    except ExportGone:
        raise Gone("The export was deleted after its retention period.") from None


def export(hub: Hub, session: Session, request_id: str, *, actor: audit.Actor) -> bytes:
    """The ZIP answering a completed access or portability request (audited)."""
    req, archive = _archive(hub, session, request_id)
    audit.record(session, actor=actor, action="export.downloaded",
                 customer_id=req.customer_id, details={"request_id": request_id})
    return archive


class Withheld:
    """A value of the export left out for a reader without the right to see personal
    data; ``count``: how many entries a withheld list had."""

    def __init__(self, count: int | None = None) -> None:
        self.count = count


def _withhold(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _withhold(v) for k, v in value.items()}
    if isinstance(value, list):
        return Withheld(len(value))
    return Withheld()


#: data.json's entries that describe the export, not the subject
_EXPORT_META = ("generated_at", "request_id", "kind")


def preview_export(hub: Hub, session: Session, request_id: str, *, personal: bool,
                   actor: audit.Actor) -> dict[str, Any]:
    """What the export ZIP holds, before it is released: each file and its size, and
    ``data.json`` and ``information.json`` read. Without ``personal`` every value about
    the subject is a ``Withheld`` (only its shape shows). Audited as a read."""
    req, archive = _archive(hub, session, request_id)
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        files = [{"name": i.filename, "size": i.file_size} for i in zf.infolist()]
        data = json.loads(zf.read("data.json"))
        information = json.loads(zf.read("information.json"))
    if not personal:
        data = {k: v if k in _EXPORT_META else _withhold(v) for k, v in data.items()}
    audit.record(session, actor=actor, action="export.previewed", customer_id=req.customer_id,
                 details={"request_id": request_id, "personal": personal})
    return {"files": files, "size": len(archive), "data": data, "information": information}


def retry_system(hub: Hub, session: Session, request_id: str, *, system: str,
                 actor: audit.Actor) -> dict[str, Any]:
    """Send a system that failed its part of the request the request again, now."""
    service = requests_service(hub)
    req = service.get(session, request_id, for_update=True)
    part = session.scalar(select(RequestSystem).where(
        RequestSystem.request_id == req.id, RequestSystem.system == system).with_for_update())
    if part is None:
        raise NotFound("This system has no part in this request.")
    fan_out.retry(session, req, part, actor, directory=service.directory,
                  downstream=service.downstream)
    return _public(session, req)


def download_by_link(hub: Hub, session: Session, token: str) -> tuple[str, bytes]:
    """The subject's signed, expiring link to their export (no login): the request id and
    the ZIP (audited); Gone once the link or the file expired."""
    exports = Exports(hub)
    try:
        request_id = exports.request_for_token(session, token, utcnow())
        archive = exports.read(session, request_id)
    except ExportGone:
        raise Gone("This download link is no longer valid.") from None
    audit.record(session, actor=audit.Actor("customer", None), action="export.downloaded",
                 details={"request_id": request_id, "via": "link"})
    return request_id, archive
