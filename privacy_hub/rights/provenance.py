"""Where each item of a customer's data came from (Art. 15(1)(g), 14(2)(f)): read back
from the audit log, which names the actor of every write and the fields it changed.

The subject (through the portal, or a request of theirs), an import (with the source it
was named with), a registered system (by name), the privacy staff, or the operator.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.clock import rfc3339
from audit.models import AuditEntry
from consent.models import ConsentEvent

#: entries that wrote profile fields; their details name the fields (``fields``)
PROFILE_WRITES = ("customer.created", "customer.updated", "customer.rectified")
EVENTS_INGESTED = "events.ingested"
#: the importer's actor (privacy_hub/importer/loading.py IMPORT_ACTOR)
IMPORT = ("cli", "import")
#: the key of the importer's audit details naming the source of an import run with
#: ``privacy-hub import --source NAME`` (h13-notices, R-DEAD-05); ``"source": "import"``
#: says only that it was an import
IMPORT_SOURCE = "import_source"


def origin(actor_type: str, actor_id: str | None,
           details: Mapping[str, Any] | None = None) -> tuple[str, str | None]:
    """``(from, name)`` of a write: ``you``, ``import``, ``system``, ``staff``,
    ``operator`` or ``hub``; ``name`` the system or the import's named source."""
    if actor_type == "customer":
        return "you", None
    if (actor_type, actor_id) == IMPORT:
        named = (details or {}).get(IMPORT_SOURCE)
        return "import", named if isinstance(named, str) else None
    if actor_type == "system":
        return "system", actor_id
    if actor_type == "staff":
        return "staff", None  # who on the staff is the controller's business, not a source
    if actor_type == "cli":
        return "operator", None
    return "hub", None


class _Sources:
    """Collects (data item, origin) → first and last time."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str, str | None], list[datetime]] = {}

    def add(self, item: str, where: tuple[str, str | None], first: datetime,
            last: datetime | None = None) -> None:
        key = (item, *where)
        times = self.seen.get(key)
        if times is None:
            self.seen[key] = [first, last or first]
        else:
            times[0], times[1] = min(times[0], first), max(times[1], last or first)

    def rows(self) -> list[dict[str, Any]]:
        return [{"data": item, "from": source, "name": name,
                 "first_at": rfc3339(times[0]), "last_at": rfc3339(times[1])}
                for (item, source, name), times in sorted(
                    self.seen.items(), key=lambda kv: (kv[0][0], kv[1][0], kv[0][1]))]


def _details(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def sources(session: Session, customer_id: str, held: Iterable[str]) -> list[dict[str, Any]]:
    """Per item held (each profile field in ``held``, ``events``, ``consent decisions``):
    every origin that wrote it, first and last time, oldest first per item."""
    held = set(held)
    found = _Sources()
    writes = session.execute(
        select(AuditEntry.actor_type, AuditEntry.actor_id, AuditEntry.details,
               AuditEntry.recorded_at)
        .where(AuditEntry.customer_id == customer_id, AuditEntry.action.in_(PROFILE_WRITES))
        .order_by(AuditEntry.seq))
    for actor_type, actor_id, raw, at in writes:
        details = _details(raw)
        where = origin(actor_type, actor_id, details)
        fields = details.get("fields")
        for name in fields if isinstance(fields, list) else []:
            if isinstance(name, str) and name in held:
                found.add(name, where, at)
    events = session.execute(
        select(AuditEntry.actor_type, AuditEntry.actor_id, func.min(AuditEntry.recorded_at),
               func.max(AuditEntry.recorded_at))
        .where(AuditEntry.customer_id == customer_id, AuditEntry.action == EVENTS_INGESTED)
        .group_by(AuditEntry.actor_type, AuditEntry.actor_id))
    for actor_type, actor_id, first, last in events:
        found.add("events", origin(actor_type, actor_id), first, last)
    decisions = session.execute(
        select(ConsentEvent.actor_type, ConsentEvent.actor_id, func.min(ConsentEvent.recorded_at),
               func.max(ConsentEvent.recorded_at))
        .where(ConsentEvent.customer_id == customer_id)
        .group_by(ConsentEvent.actor_type, ConsentEvent.actor_id))
    for actor_type, actor_id, first, last in decisions:
        found.add("consent decisions", origin(actor_type, actor_id), first, last)
    return found.rows()
