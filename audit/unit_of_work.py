"""Work queued on a session until its transaction commits.

Audit entries (audit/record.py) and domain events (consent/domain_events.py) are not
written when they happen: they are queued on the session, each with the savepoint it was
queued in, and the participants installed on the session factory write them when the
outer transaction commits, inside that transaction (the audit chain, the outbox rows), in
the order the participants were installed. So what they write exists exactly when the
change it describes was committed (DESIGN.md, "Transactions").

Rolling back a savepoint drops exactly what was queued inside it; what a savepoint queued
waits, with its savepoint, for the outer commit. A rollback of the outer transaction, or
a failed flush, drops everything queued; the end of the outer transaction, however it
ends (commit, rollback, close), drops whatever is left, so nothing queued outlives the
transaction it belongs to.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

T = TypeVar("T")
P = TypeVar("P")

#: session.info keys: {queue key: [_Queued]}, and the participants' notes
_QUEUED = "unit_of_work.queued"
_NOTES = "unit_of_work.notes"


class Participant(Protocol):
    """Writes what it queued on a session when the session's transaction commits."""

    def settle(self, session: Session) -> None:
        """Write what was queued, inside the committing outer transaction."""

    def committed(self, session: Session) -> None:
        """After the outer transaction has committed."""


class _Queued(NamedTuple, Generic[T]):
    item: T
    # The innermost savepoint open when it was queued (None: the outer transaction), so
    # rolling back a savepoint drops only what was queued inside it.
    savepoint: SessionTransaction | None


class SessionQueue(Generic[T]):
    """Items queued on a session's transaction, in order, for a participant to settle."""

    def __init__(self, key: str) -> None:
        self.key = key

    def put(self, session: Session, items: Iterable[T]) -> None:
        """Queue ``items`` in the session's transaction (begun now if there is none, so
        that the end of that transaction, however it ends, owns them)."""
        if session.get_transaction() is None:
            session.begin()
        savepoint = session.get_nested_transaction()
        queues: dict[str, list[_Queued[T]]] = session.info.setdefault(_QUEUED, {})
        queues.setdefault(self.key, []).extend(_Queued(item, savepoint) for item in items)

    def items(self, session: Session) -> list[T]:
        """What is queued, in the order it was queued."""
        queued: list[_Queued[T]] = session.info.get(_QUEUED, {}).get(self.key, [])
        return [q.item for q in queued]

    def any(self, session: Session) -> bool:
        """Whether anything is queued."""
        return bool(session.info.get(_QUEUED, {}).get(self.key))

    def take(self, session: Session) -> list[T]:
        """Remove and return what is queued."""
        queued: list[_Queued[T]] = session.info.get(_QUEUED, {}).pop(self.key, [])
        return [q.item for q in queued]


def notes(session: Session) -> dict[str, Any]:
    """A participant's notes on the session (e.g. "wrote jobs"), kept until the outer
    transaction ends."""
    found: dict[str, Any] = session.info.setdefault(_NOTES, {})
    return found


# Keyed by the Session subclass each sessionmaker makes, which is also what the
# listeners are attached to; the participants in the order they settle.
_PARTICIPANTS: weakref.WeakKeyDictionary[type[Session], dict[str, Participant]] = (
    weakref.WeakKeyDictionary())


def install(factory: sessionmaker[Session], name: str, participant: Participant) -> None:
    """Settle ``participant`` at every commit of sessions from ``factory``, after those
    installed before it. Installing ``name`` again replaces it, in its place."""
    session_class = factory.class_
    participants = _PARTICIPANTS.get(session_class)
    if participants is None:
        participants = _PARTICIPANTS[session_class] = {}
        event.listen(factory, "before_commit", _before_commit)
        event.listen(factory, "after_soft_rollback", _after_soft_rollback)
        event.listen(factory, "after_commit", _after_commit)
        event.listen(factory, "after_transaction_end", _after_transaction_end)
    participants[name] = participant


def installed(session_class: type[Session], name: str, kind: type[P]) -> P | None:
    """The participant ``name`` installed for sessions of ``session_class``, if any."""
    for cls in session_class.__mro__:
        found = _PARTICIPANTS.get(cls, {}).get(name)
        if isinstance(found, kind):
            return found
    return None


def _participants(session: Session) -> Iterable[Participant]:
    for cls in type(session).__mro__:
        participants = _PARTICIPANTS.get(cls)
        if participants is not None:
            return list(participants.values())
    return ()


def _before_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint: what it queued waits, with its savepoint, for the outer commit
    for participant in _participants(session):
        participant.settle(session)


def _after_soft_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    queues: dict[str, list[_Queued[Any]]] | None = session.info.get(_QUEUED)
    if not queues:
        return
    # A rollback undoes the database up to the nearest savepoint or the whole transaction.
    boundary = previous_transaction
    while not boundary.nested and boundary.parent is not None:
        boundary = boundary.parent
    if not boundary.nested:
        queues.clear()
        return
    for queued in queues.values():
        queued[:] = [q for q in queued if not _inside(q.savepoint, boundary)]


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # after a savepoint, what is queued still goes out with the outer commit
    for participant in _participants(session):
        participant.committed(session)


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    # SQLAlchemy ends a savepoint before it reports its rollback to _after_soft_rollback,
    # so only the end of the outer transaction (also by close()) clears the queues.
    if transaction.parent is None:
        session.info.pop(_QUEUED, None)
        session.info.pop(_NOTES, None)


def _inside(savepoint: SessionTransaction | None, boundary: SessionTransaction) -> bool:
    while savepoint is not None:
        if savepoint is boundary:
            return True
        savepoint = savepoint.parent
    return False
