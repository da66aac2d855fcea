"""Customers (data subjects): create or update, look up, read, rectify, erase, statements."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

import audit
from consent.domain_events import DomainEvent, JSONValue, emit
from privacy_hub.hub import Hub
from privacy_hub.rights.adapters import requests_service
from privacy_hub.usecases.errors import Unavailable, group_committed
from privacy_hub.vault.errors import CustomerNotFound
from privacy_hub.vault.service import HotPath, NotLogged

#: how an erasure through DELETE /customers/{id} was verified: the API key's authority
ERASED_ON_API_KEY = "api_key"


def canonical_id(value: str) -> str:
    """A customer id as the hub writes it (a lowercase UUID); CustomerNotFound if it is
    not one, as for an id no customer has."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise CustomerNotFound(value) from None


def create_or_update(hub: Hub, session: Session, fields: Mapping[str, Any], *,
                     actor: audit.Actor) -> tuple[dict[str, Any], bool]:
    """The customer matching external_id, else email, updated; else a new one. Returns the
    profile and whether it was created."""
    return hub.vault.upsert(session, fields, actor=actor)


def create_new(hub: Hub, hot: HotPath, fields: Mapping[str, Any], *,
               actor: audit.Actor) -> dict[str, Any] | None:
    """The hot path: a new customer in one group-committed transaction; None, changing
    nothing, when one already matches (then create_or_update)."""
    with group_committed():
        return hub.vault.create_new(hot, fields, actor=actor)


def lookup(hub: Hub, session: Session | None, query: dict[str, str], *,
           actor: audit.Actor, hot: HotPath | None = None,
           reason: Mapping[str, str] | None = None) -> list[str]:
    """Ids of the customers with exactly this email, phone or external id (audited, with
    the console's stated ``reason`` when given: ids and words, never the searched value).

    With ``hot`` (and no session), one read outside any transaction and the audit entry
    group-committed; Unavailable if that entry could not be made durable.
    """
    if hot is None:
        assert session is not None  # noqa: S101 (a caller's bug, not input)
        return hub.vault.lookup(session, actor=actor, email=query.get("email"),
                                phone=query.get("phone"), external_id=query.get("external_id"),
                                reason=reason)
    try:
        return hub.vault.lookup(None, actor=actor, hot=hot, email=query.get("email"),
                                phone=query.get("phone"), external_id=query.get("external_id"))
    except NotLogged:
        raise Unavailable() from None


def read(hub: Hub, session: Session, customer_id: str, *, actor: audit.Actor) -> dict[str, Any]:
    """The full profile, decrypted, with its status (audited)."""
    return hub.vault.read(session, customer_id, actor=actor)


def rectify(hub: Hub, session: Session, customer_id: str, changes: Mapping[str, Any], *,
            actor: audit.Actor) -> dict[str, Any]:
    """Rectify fields (Art. 16) and tell every system which fields changed (Art. 19)."""
    profile = hub.vault.rectify(session, customer_id, changes, actor=actor)
    if changes:
        names: list[JSONValue] = [str(name) for name in sorted(changes)]
        emit(session, DomainEvent("customer.rectified", {
            "customer_id": customer_id, "fields": names}, customer_id=customer_id))
    return profile


def erase(hub: Hub, session: Session, customer_id: str, *, actor: audit.Actor,
          verification_method: str = ERASED_ON_API_KEY) -> dict[str, Any]:
    """Erase as an erasure request does (Art. 17): received and verified at once on the
    caller's authority, so legal-hold copies are kept and every system is told. Returns
    the tombstone; an erased customer's is returned again (repeating is harmless)."""
    row = hub.vault.get_row(session, customer_id)
    if row.status != "erased":
        requests_service(hub).submit(
            session, type="erasure", customer_id=customer_id, verified=True,
            verification_method=verification_method, channel="api", actor=actor)
        row = hub.vault.get_row(session, customer_id)
    return hub.vault.profile(session, row)


def statements(hub: Hub, session: Session, customer_id: str, *,
               actor: audit.Actor) -> list[dict[str, Any]]:
    """Supplementary statements, oldest first (audited); none once erased."""
    row = hub.vault.get_row(session, customer_id)
    if row.status == "erased":
        return []
    audit.record(session, actor=actor, action="customer.statements_read",
                 customer_id=customer_id, details={})
    return hub.vault.statements(session, customer_id)


def add_statement(hub: Hub, session: Session, customer_id: str, text: str, *,
                  concerns: Sequence[str], actor: audit.Actor) -> dict[str, Any]:
    """Attach the subject's supplementary statement (Art. 16)."""
    return hub.vault.add_statement(session, customer_id, text, concerns=concerns, actor=actor)
