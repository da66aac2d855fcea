"""Domain events: what happened, queued in the caller's transaction.

Lower layers cannot know about webhooks or mail. They ``emit`` events into the session;
the application layer turns them into outbox rows when that session commits, so an
event exists exactly when the change it describes was committed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from audit.unit_of_work import SessionQueue

JSONValue = str | int | float | bool | None | list["JSONValue"] | dict[str, "JSONValue"]


@dataclass(frozen=True)
class DomainEvent:
    #: e.g. "consent.changed", "customer.restricted", "consent.confirmation_requested"
    type: str
    #: the webhook payload's ``data``: identifiers only, never personal data
    data: Mapping[str, JSONValue]
    customer_id: str | None = None
    purpose: str | None = None
    #: not sent to downstream systems (e.g. a one-time token for a mail to the customer)
    private: Mapping[str, JSONValue] = field(default_factory=dict)


_EVENTS: SessionQueue[DomainEvent] = SessionQueue("domain_events")


def emit(session: Session, event: DomainEvent) -> None:
    """Queue an event; it is written to the outbox when the session commits.

    Tied to the session's transaction (begun now if there is none), so a rollback of it,
    or of the savepoint it was emitted in, drops the event (audit/unit_of_work.py).
    """
    _EVENTS.put(session, (event,))


def queued(session: Session) -> bool:
    """Whether the session holds events not yet written."""
    return _EVENTS.any(session)


def take(session: Session) -> list[DomainEvent]:
    """Remove and return the queued events (called by the outbox at commit)."""
    return _EVENTS.take(session)
