"""Erasure (Art. 17): the hub's part, in one transaction, and what downstream systems
are told to erase.

Consents are withdrawn and the gate denies everything from then on; what a legal duty
requires is kept under its own key until the duty ends (Art. 17(3)(b)); the rest is
crypto-shredded; every system is told, with the identifiers it matches on.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import audit
from audit.clock import rfc3339, utcnow
from consent import flags, suppression
from consent import purposes as registry
from consent.domain_events import DomainEvent, emit
from consent.ledger import Decision, Ledger
from consent.models import ConsentState
from consent.purposes import Purpose
from dsar.fan_out import systems_with_part
from dsar.models import DataSubjectRequest, identifiers_label
from dsar.ports import SubjectDirectory
from dsar.workflow import RequestType


def erase_customer(session: Session, req: DataSubjectRequest, customer_id: str,
                   actor: audit.Actor, *, directory: SubjectDirectory,
                   ledger: Ledger) -> bool:
    """Erase ``customer_id`` for the erasure request ``req`` and record the outcome in it.

    True if downstream systems have their part still to report (the request completes
    when they have), False if the erasure is already complete.
    """
    identifiers = directory.identifiers(session, customer_id)
    in_force = session.scalars(select(ConsentState).where(
        ConsentState.customer_id == customer_id,
        ConsentState.status.in_(("granted", "pending_confirmation")))).all()
    for state in in_force:
        ledger.record(session, customer_id, Decision(
            purpose=state.purpose, granted=False, source="erasure_request",
            collection_method="erasure_request"), actor=actor)
    flags.mark_erased(session, customer_id, actor=actor, request_id=req.id)
    kept = _retain_under_legal_duty(session, customer_id, actor, directory)
    # R-ERASE-05 (Art. 17(3)(b), 21(3)): so that a re-import cannot bring marketing back;
    # listed while the identifiers can still be read.
    directory.suppress(session, customer_id, reason=suppression.ERASED, actor=actor)
    directory.erase(session, customer_id, actor=actor, request_id=req.id)
    systems = systems_with_part(session, req)
    if systems:
        # The one readable copy of the identifiers left: sealed under the hub's key,
        # so a system that reports its part failed can be told again (Art. 17(2), 19).
        # It goes when the request ends (forget_identifiers).
        req.details_ct = directory.seal(session, None, identifiers_label(req.id),
                                        json.dumps(dict(identifiers)).encode())
    emit(session, DomainEvent("customer.erased", {
        "customer_id": customer_id, "request_id": req.id, "identifiers": dict(identifiers)},
        customer_id=customer_id))
    req.outcome = json.dumps({"erased": True, "withdrawn_consents": len(in_force),
                              "kept": kept})
    return bool(systems)


def legal_holds(session: Session) -> list[Purpose]:
    """The purposes whose data an erasure keeps: a legal obligation with fields to keep
    (Art. 17(3)(b)), each until its retention ends."""
    return [p for p in registry.all_purposes(session)
            if p.legal_basis == "legal_obligation" and p.fields]


def _retain_under_legal_duty(session: Session, customer_id: str, actor: audit.Actor,
                             directory: SubjectDirectory) -> list[dict[str, Any]]:
    """Keep the fields of every legal-obligation purpose until its retention ends; what
    was kept and why, for the reply to the subject."""
    now = utcnow()
    kept = []
    for purpose in legal_holds(session):
        until = now + timedelta(days=purpose.retention_days)
        fields = directory.retain(session, customer_id, purpose=purpose.key,
                                  legal_basis=str(purpose.legal_basis),
                                  fields=purpose.fields, hold_until=until, actor=actor)
        if fields:
            kept.append({"purpose": purpose.key, "title": purpose.title,
                         "legal_basis": str(purpose.legal_basis), "fields": fields,
                         "data_categories": list(purpose.data_categories),
                         "until": rfc3339(until),
                         "why": "kept under a legal obligation (Art. 17(3)(b) GDPR): "
                                + purpose.description})
    return kept


def forget_identifiers(req: DataSubjectRequest) -> None:
    """The request ended: drop the identifiers an erasure kept for retries."""
    if req.type == RequestType.ERASURE:
        req.details_ct = None
