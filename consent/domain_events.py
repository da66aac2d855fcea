"""Domain events: what happened, queued in the caller's transaction.

Lower layers cannot know about webhooks or mail. They ``emit`` events into the session;
the application layer turns them into outbox rows when that session commits, so an
event exists exactly when the change it describes was committed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

_KEY = "domain_events"

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


def emit(session: Session, event: DomainEvent) -> None:
    """Queue an event; it is written to the outbox when the session commits."""
    if not session.in_transaction():
        # Tie the event to a transaction, so a rollback of it drops the event.
        session.begin()
    session.info.setdefault(_KEY, []).append(event)


def pending(session: Session) -> list[DomainEvent]:
    events: list[DomainEvent] = session.info.get(_KEY, [])
    return events


def take(session: Session) -> list[DomainEvent]:
    """Remove and return the queued events (called by the outbox at commit)."""
    events: list[DomainEvent] = session.info.pop(_KEY, [])
    return events


def discard(session: Session) -> None:
    session.info.pop(_KEY, None)
