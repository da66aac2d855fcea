"""Recording audit entries: checked and queued in the caller's transaction.

``record()`` only validates and queues; the entries are chained when that transaction
commits (audit/committing.py), or not at all if it rolls back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session

from audit.chain import Unchained
from audit.committing import PENDING, audited
from audit.details import check_id, encode_details
from audit.errors import AuditError, AuditNotInstalled, InvalidAuditEntry

ACTOR_KINDS = frozenset({"system", "staff", "customer", "job", "cli"})
ACTION_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


@dataclass(frozen=True)
class Actor:
    """Who did it: a kind and a pseudonymous id (a staff id, never an email)."""

    kind: str
    id: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ACTOR_KINDS:
            raise InvalidAuditEntry(f"unknown actor kind {self.kind!r}")
        if self.id is not None:
            check_id("actor id", self.id, 128)


def record(
    session: Session,
    *,
    actor: Actor,
    action: str,
    customer_id: str | None = None,
    details: Mapping[str, object] | None = None,
) -> None:
    """Queue an audit entry in the caller's transaction; it is chained when that commits."""
    record_many(session, actor=actor, action=action, entries=[(customer_id, details)])


def record_many(
    session: Session,
    *,
    actor: Actor,
    action: str,
    entries: Iterable[tuple[str | None, Mapping[str, object] | None]],
) -> None:
    """Queue one entry per ``(customer_id, details)``, in order, as record() would.

    For bulk loads: a details object shared by several entries is checked and encoded
    once, and the action once.
    """
    if audited(type(session)) is None:
        raise AuditNotInstalled("this session's factory was not passed to audit.install()")
    _check_action(action)
    items = list(entries)  # keeps every details object alive: their ids stay unique
    encoded: dict[int, str] = {}
    queued: list[Unchained] = []
    for customer_id, details in items:
        if customer_id is not None:
            check_id("customer id", customer_id, 36)
        details_json = encoded.get(id(details))
        if details_json is None:
            details_json = encoded[id(details)] = encode_details(details)
        queued.append(Unchained(actor.kind, actor.id, action, customer_id, details_json))
    current = session.get_nested_transaction() or session.get_transaction()
    if current is not None and not current.is_active:
        raise AuditError("the transaction is committed or failed; its entries are settled")
    PENDING.put(session, queued)


def entry(actor: Actor, action: str, customer_id: str | None = None,
          details: Mapping[str, object] | None = None) -> Unchained:
    """An entry checked as record() checks it, for Appender works that chain their own."""
    _check_action(action)
    if customer_id is not None:
        check_id("customer id", customer_id, 36)
    return Unchained(actor.kind, actor.id, action, customer_id, encode_details(details))


def _check_action(action: str) -> None:
    if len(action) > 64 or not ACTION_PATTERN.match(action):
        raise InvalidAuditEntry(f"action {action!r} is not like 'consent.granted'")
