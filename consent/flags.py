"""Processing flags the gate honours: restriction (Art. 18), objection (Art. 21), erasure.

Data subject requests set them through these functions; every change is audited,
kept in a history (for questions about the past) and announced as a domain event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Table, case, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

import audit
from audit.clock import utcnow
from consent import purposes as registry
from consent.domain_events import DomainEvent, emit
from consent.errors import Conflict, InvalidInput
from consent.gate import ALL_DIRECT_MARKETING, OBJECTABLE, Flags
from consent.models import CustomerRelationship, FlagEvent, Objection, ProcessingFlags

#: Art. 18(1)(a)-(d)
RESTRICTION_GROUNDS = ("accuracy_contested", "unlawful_processing", "legal_claims",
                       "objection_pending")


def _flags_row(session: Session, customer_id: str) -> ProcessingFlags:
    """The customer's flags row, locked (created unset if there is none yet)."""
    row = session.get(ProcessingFlags, customer_id, with_for_update=True)
    if row is None:
        row = ProcessingFlags(customer_id=customer_id, restricted=False, erased=False,
                              updated_at=utcnow())
        session.add(row)
    return row


def _add_flag_event(session: Session, customer_id: str, kind: str, purpose: str | None = None,
                    detail: str | None = None) -> None:
    """A line in the flags' history (``FlagEvent``), which ``flags_at`` replays."""
    session.add(FlagEvent(customer_id=customer_id, kind=kind, purpose=purpose, detail=detail,
                          recorded_at=utcnow()))


def restrict(session: Session, customer_id: str, *, ground: str, actor: audit.Actor,
             request_id: str | None = None) -> None:
    """Art. 18: deny every purpose except legal-obligation ones until lifted. Callers commit."""
    if ground not in RESTRICTION_GROUNDS:
        raise InvalidInput({"ground": ["one of " + ", ".join(RESTRICTION_GROUNDS)]})
    row = _flags_row(session, customer_id)
    row.restricted = True
    row.restriction_ground = ground
    row.updated_at = utcnow()
    _add_flag_event(session, customer_id, "restricted", detail=ground)
    details: dict[str, object] = {"ground": ground}
    if request_id:
        details["request_id"] = request_id
    audit.record(session, actor=actor, action="processing.restricted", customer_id=customer_id,
                 details=details)
    emit(session, DomainEvent("customer.restricted",
                              {"customer_id": customer_id, "restricted": True, "ground": ground},
                              customer_id=customer_id))


def lift_restriction(session: Session, customer_id: str, *, actor: audit.Actor,
                     request_id: str | None = None) -> bool:
    """End a restriction. The caller must have told the subject first (Art. 18(3))."""
    row = session.get(ProcessingFlags, customer_id, with_for_update=True)
    if row is None or not row.restricted:
        return False
    row.restricted = False
    row.restriction_ground = None
    row.updated_at = utcnow()
    _add_flag_event(session, customer_id, "restriction_lifted")
    details: dict[str, object] = {"request_id": request_id} if request_id else {}
    audit.record(session, actor=actor, action="processing.restriction_lifted",
                 customer_id=customer_id, details=details)
    emit(session, DomainEvent("customer.restricted",
                              {"customer_id": customer_id, "restricted": False},
                              customer_id=customer_id))
    return True


def object_to(session: Session, customer_id: str, purposes: Sequence[str] | None, *,
              actor: audit.Actor, request_id: str | None = None) -> list[str]:
    """Art. 21: object to the named purposes, or to all direct marketing when none are named.

    Takes effect at once. Returns the keys recorded. Callers commit.
    """
    keys = list(dict.fromkeys(purposes)) if purposes else [ALL_DIRECT_MARKETING]
    for key in keys:
        if key != ALL_DIRECT_MARKETING:
            registry.get(session, key)  # UnknownPurpose for a key that does not exist
    now = utcnow()
    for key in keys:
        if session.get(Objection, (customer_id, key)) is None:
            session.add(Objection(customer_id=customer_id, purpose=key, created_at=now))
            _add_flag_event(session, customer_id, "objected", purpose=key)
    session.flush()
    details: dict[str, object] = {"purposes": keys}
    if request_id:
        details["request_id"] = request_id
    audit.record(session, actor=actor, action="processing.objected", customer_id=customer_id,
                 details=details)
    for key in keys:
        emit(session, DomainEvent("customer.objected",
                                  {"customer_id": customer_id, "purpose": key},
                                  customer_id=customer_id,
                                  purpose=None if key == ALL_DIRECT_MARKETING else key))
    return keys


def record_compelling_grounds(session: Session, customer_id: str, purpose: str, *,
                              grounds: str, actor: audit.Actor) -> None:
    """Art. 21(1): a DPO documents compelling legitimate grounds that override an objection.

    Never possible for direct marketing (Art. 21(3)).
    """
    if not grounds.strip():
        raise InvalidInput({"grounds": ["describe the compelling legitimate grounds"]})
    rule = registry.get(session, purpose)
    if rule.direct_marketing:
        raise Conflict("an objection to direct marketing is absolute (Art. 21(3)); "
                       "no grounds can override it")
    if rule.legal_basis not in OBJECTABLE:
        raise Conflict("only objections to legitimate-interest or public-task purposes can be "
                       "overridden")
    row = session.get(Objection, (customer_id, purpose), with_for_update=True)
    if row is None:
        raise Conflict("the customer has not objected to this purpose")
    row.compelling_grounds = grounds.strip()
    row.grounds_recorded_at = utcnow()
    row.grounds_recorded_by = actor.id
    _add_flag_event(session, customer_id, "grounds_recorded", purpose=purpose)
    audit.record(session, actor=actor, action="processing.compelling_grounds_recorded",
                 customer_id=customer_id, details={"purpose": purpose})


def mark_erased(session: Session, customer_id: str, *, actor: audit.Actor,
                request_id: str | None = None) -> None:
    """The customer was erased: the gate denies everything from now on. Callers commit."""
    row = _flags_row(session, customer_id)
    if row.erased:
        return
    row.erased = True
    row.updated_at = utcnow()
    _add_flag_event(session, customer_id, "erased")
    details: dict[str, object] = {"request_id": request_id} if request_id else {}
    audit.record(session, actor=actor, action="processing.erased", customer_id=customer_id,
                 details=details)


def _as_flags(restricted: bool, erased: bool,
              objections: Iterable[tuple[str, str | None]], suppressed: bool = False) -> Flags:
    """The gate's Flags; ``objections``: (purpose, compelling grounds or None)."""
    objected: set[str] = set()
    grounds: set[str] = set()
    for purpose, compelling in objections:
        objected.add(purpose)
        if compelling:
            grounds.add(purpose)
    return Flags(exists=True, erased=erased, restricted=restricted,
                 objections=frozenset(objected), compelling_grounds=frozenset(grounds),
                 suppressed=suppressed)


def customer_status(stored: str, restricted: bool) -> str:
    """The status a customer is shown and filtered by (API.md "Customers"): ``erased`` once
    erased, whatever else holds; ``restricted`` while a restriction (Art. 18) is in force,
    ``active`` again once it is lifted. ``stored``: the vault's status (active or erased)."""
    if stored == "erased":
        return "erased"
    return "restricted" if restricted else "active"


def status_of(session: Session, customer_id: str, stored: str) -> str:
    """``customer_status`` of one customer, with their restriction flag read here."""
    if stored == "erased":
        return "erased"
    row = session.get(ProcessingFlags, customer_id)
    return customer_status(stored, bool(row is not None and row.restricted))


def flags_for(session: Session, customer_id: str) -> Flags:
    """The customer's current flags (``exists`` is the caller's business)."""
    row = session.get(ProcessingFlags, customer_id)
    objections = [(r.purpose, r.compelling_grounds) for r in session.execute(
        select(Objection.purpose, Objection.compelling_grounds)
        .where(Objection.customer_id == customer_id))]
    return _as_flags(bool(row and row.restricted), bool(row and row.erased), objections,
                     bool(row and row.suppressed))


def flags_at(session: Session, customer_id: str, at: datetime) -> Flags:
    """The flags as they stood at ``at``, replayed from their history."""
    restricted = erased = suppressed = False
    objected: dict[str, str | None] = {}
    events = session.scalars(select(FlagEvent).where(FlagEvent.customer_id == customer_id,
                                                     FlagEvent.recorded_at <= at)
                             .order_by(FlagEvent.id))
    for ev in events:
        if ev.kind == "restricted":
            restricted = True
        elif ev.kind == "restriction_lifted":
            restricted = False
        elif ev.kind == "erased":
            erased = True
        elif ev.kind == "objected" and ev.purpose:
            objected.setdefault(ev.purpose, None)
        elif ev.kind == "grounds_recorded" and ev.purpose:
            objected[ev.purpose] = "recorded"
        elif ev.kind in ("suppressed", "suppression_lifted"):
            suppressed = ev.kind == "suppressed"
    return _as_flags(restricted, erased, objected.items(), suppressed)


# -- the soft opt-in ---------------------------------------------------------------------

def record_purchase(session: Session, customer_id: str, at: datetime, *,
                    actor: audit.Actor) -> None:
    """The customer bought something at ``at``: purposes on the soft opt-in (ePrivacy
    Art. 13(2)) may now reach them, until they object. Callers commit.

    One row per customer, its first and last purchase; concurrent first purchases meet in
    the upsert, not in a unique-key error. Only the first purchase is audited (it changes
    what the gate answers); the purchase itself is in the caller's own entry.
    """
    table = cast(Table, CustomerRelationship.__table__)
    first = session.execute(select(table.c.first_purchase_at)
                            .where(table.c.customer_id == customer_id)).first()
    upsert = (postgresql.insert if session.get_bind().dialect.name == "postgresql"
              else sqlite.insert)(table).values(customer_id=customer_id, first_purchase_at=at,
                                                last_purchase_at=at)
    new = upsert.excluded
    session.execute(upsert.on_conflict_do_update(index_elements=[table.c.customer_id], set_={
        "first_purchase_at": case((new.first_purchase_at < table.c.first_purchase_at,
                                   new.first_purchase_at), else_=table.c.first_purchase_at),
        "last_purchase_at": case((new.last_purchase_at > table.c.last_purchase_at,
                                  new.last_purchase_at), else_=table.c.last_purchase_at)}))
    if first is None:
        audit.record(session, actor=actor, action="processing.customer_relationship",
                     customer_id=customer_id, details={})


def customer_since(session: Session, customer_id: str, at: datetime) -> bool:
    """Whether the customer had bought something by ``at``."""
    return session.scalar(select(CustomerRelationship.customer_id).where(
        CustomerRelationship.customer_id == customer_id,
        CustomerRelationship.first_purchase_at <= at)) is not None
