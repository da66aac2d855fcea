"""What rectification (Art. 16), restriction (Art. 18) and objection (Art. 21) change:
the customer's record in the vault, or the processing flags the gate honours. Each takes
effect in the caller's transaction, so the next check sees it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

import audit
from consent import flags, suppression
from consent import purposes as registry
from consent.domain_events import DomainEvent, emit
from consent.gate import ALL_DIRECT_MARKETING
from dsar.models import DataSubjectRequest, details_label
from dsar.ports import SubjectDirectory
from dsar.workflow import RequestType


def object_at_once_to_direct_marketing(session: Session, req: DataSubjectRequest,
                                       plain: Mapping[str, Any], actor: audit.Actor,
                                       directory: SubjectDirectory) -> None:
    """On receipt of an objection, before it is verified: stop the direct marketing it names."""
    # Art. 21(3): an objection to direct marketing stops it at once, before any check.
    if req.customer_id is None:
        return
    named: Sequence[str] | None = plain.get("purposes")
    if named is None:
        _object(session, req.customer_id, None, req, directory, actor)
        return
    marketing = [k for k in named if registry.get(session, k).direct_marketing]
    if marketing:
        _object(session, req.customer_id, marketing, req, directory, actor)


def _object(session: Session, customer_id: str, purposes: Sequence[str] | None,
            req: DataSubjectRequest, directory: SubjectDirectory, actor: audit.Actor) -> None:
    """Record the objection; one to direct marketing (all of it, or a purpose of it) also
    puts the customer's email and phone on the suppression list (R-ERASE-05, Art. 21(3)),
    so that a customer made again with them is not marketed to either."""
    keys = flags.object_to(session, customer_id, purposes, actor=actor, request_id=req.id)
    if any(k == ALL_DIRECT_MARKETING or registry.get(session, k).direct_marketing
           for k in keys):
        directory.suppress(session, customer_id, reason=suppression.OBJECTED_DIRECT_MARKETING,
                           actor=actor)


def apply(session: Session, req: DataSubjectRequest, customer_id: str,
          directory: SubjectDirectory, actor: audit.Actor) -> None:
    """Carry out a verified rectification, restriction or objection of ``customer_id``
    (the request's customer); rectified fields are announced as ``customer.rectified``
    (Art. 19)."""
    plain = json.loads(req.details)
    kind = RequestType(req.type)
    if kind is RequestType.RESTRICTION:
        flags.restrict(session, customer_id, ground=plain["ground"], actor=actor,
                       request_id=req.id)
    elif kind is RequestType.OBJECTION:
        _object(session, customer_id, plain.get("purposes"), req, directory, actor)
    elif kind is RequestType.RECTIFICATION:
        sealed = json.loads(directory.open(session, customer_id, details_label(req.id),
                                           req.details_ct or b""))
        directory.rectify(session, customer_id, sealed["changes"], actor=actor)
        emit(session, DomainEvent("customer.rectified", {
            "customer_id": customer_id, "fields": plain["fields"],
            "request_id": req.id}, customer_id=customer_id))
    else:
        raise ValueError(f"a {kind} request has no effect of its own here")
