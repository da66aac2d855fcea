"""Registered systems (downstream CRM services), their API keys, and webhook deliveries."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import audit
from privacy_hub.hub import Hub
from privacy_hub.jobs import deliveries as delivery_log
from privacy_hub.jobs import outbox
from privacy_hub.models import System
from privacy_hub.systems import SystemRegistry, validate_webhook_url
from privacy_hub.usecases.errors import Conflict, Invalid, NotFound

_DELIVERY_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def register(hub: Hub, session: Session, *, name: str, scopes: Sequence[str],
             purposes: Sequence[str] | None = None, webhook_url: str | None = None,
             actor: audit.Actor) -> dict[str, Any]:
    """Register a system; its API key and webhook secret are only in this answer."""
    if webhook_url:
        try:
            msg = validate_webhook_url(webhook_url)
        except ValueError:  # urlsplit: e.g. "http://[::1" (unclosed IPv6 literal)
            msg = "not a valid URL"
        if msg:
            raise Invalid("The webhook URL is not acceptable.", errors={"webhook_url": [msg]})
    system, api_key, secret = hub.systems.create(
        session, name=name, scopes=list(scopes),
        purposes=None if purposes is None else list(purposes), webhook_url=webhook_url,
        actor=actor)
    return {**SystemRegistry.public(system), "api_key": api_key, "webhook_secret": secret}


def rotate_key(hub: Hub, session: Session, name: str, *, actor: audit.Actor) -> str:
    """Issue a new API key for a system; the old one stops working."""
    return hub.systems.rotate_key(session, name, actor=actor)


def page(session: Session, *, after: str | None,
         limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """Registered systems by name, after the name ``after``: the items and the last name
    when more follow."""
    stmt = select(System).order_by(System.name).limit(limit + 1)
    if after is not None:
        stmt = stmt.where(System.name > after)
    rows = session.scalars(stmt).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return [SystemRegistry.public(s) for s in rows], rows[-1].name if more else None


def all_systems(session: Session) -> list[dict[str, Any]]:
    """Every registered system, by name."""
    return [SystemRegistry.public(s) for s in session.scalars(select(System).order_by(System.name))]


def get(session: Session, name: str) -> dict[str, Any]:
    """One system by name."""
    system = session.scalar(select(System).where(System.name == name))
    if system is None:
        raise NotFound("No system with this name.")
    return SystemRegistry.public(system)


def deliveries(session: Session, *, status: str | None, system: str | None,
               before: tuple[datetime, str] | None,
               limit: int) -> tuple[list[dict[str, Any]], tuple[datetime, str] | None]:
    """Webhook deliveries, newest first: the items and the position of the last one when
    more follow."""
    rows = delivery_log.list_deliveries(session, status=status, system=system, before=before,
                                  limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1][0] if rows else None
    position = (last.created_at, last.id) if more and last is not None else None
    return [delivery_log.public_delivery(job, name) for job, name in rows], position


def delivery(session: Session, delivery_id: str) -> dict[str, Any]:
    """One delivery (one event to one system)."""
    row = delivery_log.get_delivery(session, delivery_id) if _DELIVERY_ID.match(delivery_id) else None
    if row is None:
        raise NotFound("No webhook delivery with this id.")
    job, system = row
    return delivery_log.public_delivery(job, system)


def retry_delivery(session: Session, delivery_id: str, *, actor: audit.Actor) -> dict[str, Any]:
    """Send a dead delivery again now, with a fresh set of attempts (audited)."""
    delivery(session, delivery_id)
    try:
        row = delivery_log.retry_delivery(session, delivery_id, actor=actor)
    except delivery_log.DeliveryNotRetryable as exc:
        raise Conflict(str(exc).capitalize() + ".", type_="delivery-not-dead",
                       delivery_status=exc.status) from None
    if row is None:
        raise NotFound("No webhook delivery with this id.")
    job, system = row
    return delivery_log.public_delivery(job, system)


# -- the console's view of the registry ---------------------------------------------------

def _with_status(system: System) -> dict[str, Any]:
    """The public fields, and what staff also see: whether the system is disabled and the
    public key id of its current key (never the secret part), to tell keys apart."""
    return {**SystemRegistry.public(system), "disabled_at": system.disabled_at,
            "key_id": system.key_id, "has_webhook_secret": system.webhook_secret_ct is not None}


def registry(session: Session) -> list[dict[str, Any]]:
    """Every registered system by name, with its status (active or disabled)."""
    return [_with_status(s) for s in session.scalars(select(System).order_by(System.name))]


def status(session: Session, name: str) -> dict[str, Any]:
    """One system by name, with its status."""
    system = session.scalar(select(System).where(System.name == name))
    if system is None:
        raise NotFound("No system with this name.")
    return _with_status(system)


def disable(hub: Hub, session: Session, name: str, *, actor: audit.Actor) -> dict[str, Any]:
    """Revoke a system's key and stop its webhooks, for good (audited)."""
    status(session, name)
    return _with_status(hub.systems.disable(session, name, actor=actor))


#: the event type of a test delivery (API.md "Systems and webhooks")
TEST_EVENT = "hub.test"


def send_test_webhook(session: Session, name: str, *, actor: audit.Actor) -> str:
    """Queue one signed ``hub.test`` delivery to the system's webhook URL, through the
    same outbox, signature and retries as every event; returns the delivery id."""
    system = session.scalar(select(System).where(System.name == name))
    if system is None:
        raise NotFound("No system with this name.")
    if system.disabled_at is not None:
        raise Conflict("The system is disabled; it receives no webhooks.",
                       type_="system-disabled")
    if not system.webhook_url:
        raise Conflict("The system has no webhook URL.", type_="no-webhook-url")
    delivery_id = outbox.enqueue_webhook(session, system_id=system.id, event_type=TEST_EVENT,
                                         data={"system": name})
    audit.record(session, actor=actor, action="webhook.test_queued",
                 details={"delivery_id": delivery_id, "system": name})
    return delivery_id


def deliveries_of(session: Session, name: str, *, limit: int = 100) -> list[dict[str, Any]]:
    """A system's latest deliveries, the failed ones first (dead, then pending after an
    error), each group newest first."""
    items, _ = deliveries(session, status=None, system=name, before=None, limit=limit)
    dead = [d for d in items if d["status"] == "dead"]
    failing = [d for d in items if d["status"] == "pending" and d["last_error"]]
    rest = [d for d in items if d not in dead and d not in failing]
    return dead + failing + rest
