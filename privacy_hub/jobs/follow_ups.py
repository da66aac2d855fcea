"""Jobs that a domain event brings with it, queued with the event's own outbox rows
(privacy_hub/jobs/outbox.py), so in the transaction of the change itself, whichever
way it was made (API, portal, unsubscribe link, GPC signal, batch or group commit).

R-ERASE-03: a withdrawn consent and an objection each queue the erasure of the events
nothing covers any more (privacy_hub/jobs/withdrawal.py runs it), unless the customer has
no event it could erase: then there is nothing to erase, and the job (a row, a claim, a
transaction and an audit entry of the worker) is not queued. The probe runs in the
change's own transaction, so an event stored before it is seen. Nothing here imports
the hub: the outbox imports this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Dialect, Table, bindparam, literal, select

from audit.prepared import Prepared
from consent.domain_events import DomainEvent
from consent.gate import ALL_DIRECT_MARKETING
from privacy_hub.vault.models import CustomerEvent

#: the job kind (privacy_hub/jobs/kinds.py)
EVENTS_ERASURE = "events_erasure"


def follow_up(ev: DomainEvent) -> tuple[str, dict[str, Any]] | None:
    """The (kind, payload) of the job ``ev`` brings, or None."""
    if ev.customer_id is None:
        return None
    if ev.type == "consent.changed" and ev.data.get("status") == "withdrawn" and ev.purpose:
        return EVENTS_ERASURE, {"customer_id": ev.customer_id, "purposes": [ev.purpose],
                                "cause": "withdrawal"}
    if ev.type == "customer.objected":
        named = ev.data.get("purpose")
        purposes = None if named in (None, ALL_DIRECT_MARKETING) else [named]
        return EVENTS_ERASURE, {"customer_id": ev.customer_id, "purposes": purposes,
                                "cause": "objection"}
    return None


_EVENTS = cast(Table, CustomerEvent.__table__)
# One index probe (ix_customer_events_customer_id), then that customer's events only.
_ANY_EVENT_RAW = Prepared(select(literal(1)).select_from(_EVENTS).where(
    _EVENTS.c.customer_id == bindparam("customer_id")).limit(1))
_ANY_EVENT_OF_RAW = Prepared(select(literal(1)).select_from(_EVENTS).where(
    _EVENTS.c.customer_id == bindparam("customer_id"),
    _EVENTS.c.purpose == bindparam("purpose")).limit(1))


def needed(cursor: Any, dialect: Dialect, kind: str, payload: dict[str, Any]) -> bool:
    """Whether the job ``follow_up`` returned has anything to do: an events erasure only
    when the customer has an event of its purposes (of any purpose, for every direct-
    marketing one), read on ``cursor`` in the change's transaction."""
    if kind != EVENTS_ERASURE:
        return True
    customer_id = payload["customer_id"]
    purposes: Sequence[str] | None = payload.get("purposes")
    if purposes is None:
        return _ANY_EVENT_RAW.execute(cursor, dialect,
                                      {"customer_id": customer_id}).fetchone() is not None
    return any(_ANY_EVENT_OF_RAW.execute(cursor, dialect, {
        "customer_id": customer_id, "purpose": purpose}).fetchone() is not None
        for purpose in purposes)
