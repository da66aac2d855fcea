"""Jobs that a domain event brings with it, queued with the event's own outbox rows
(privacy_hub/jobs/outbox.py), so in the transaction of the change itself, whichever
way it was made (API, portal, unsubscribe link, GPC signal, batch or group commit).

R-ERASE-03: a withdrawn consent and an objection each queue the erasure of the events
nothing covers any more (privacy_hub/jobs/withdrawal.py runs it). Nothing here imports
the hub: the outbox imports this module.
"""

from __future__ import annotations

from typing import Any

from consent.domain_events import DomainEvent
from consent.gate import ALL_DIRECT_MARKETING

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
