"""The disclosure log (Art. 15(1)(c), R-ACC-03): which system received which customer's
data, for which purpose, and when.

Two sources, merged when read: the ``disclosures`` table (purpose-bound reads of fields,
written in the read's transaction; webhooks naming the customer, written once delivered)
and the check log (``consent_checks``: every gate answer about the customer, written in
batches off the request path, so no second row per check). Only names are kept: system,
purpose, field names, event type; never a personal value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from audit.clock import rfc3339
from consent.models import ConsentCheck
from privacy_hub.models import Disclosure
from privacy_hub.vault.models import PERSONAL_FIELDS

DATA_READ = "data_read"
WEBHOOK = "webhook"
CHECK = "check"
KINDS = (DATA_READ, WEBHOOK, CHECK)
#: check log rows that tell a system something about one customer: single checks (and
#: ``at=`` checks) and refused reads (an allowed read is a ``data_read`` row already)
_CHECK_VIA = ("check", "data")
#: the newest rows of each source read into one export or pack
MAX_ROWS = 10_000
_INSERT = insert(Disclosure)


def record_read(session: Session, *, customer_id: str, system: str, purpose: str,
                fields: Sequence[str], at: datetime) -> None:
    """A system read ``fields`` of the customer for ``purpose`` (in the read's transaction)."""
    session.execute(_INSERT, [{"customer_id": customer_id, "system": system,
                               "purpose": purpose, "kind": DATA_READ,
                               "fields": json.dumps(sorted(fields)), "event_type": None,
                               "disclosed_at": at}])


def webhook_fields(data: Mapping[str, Any]) -> list[str]:
    """The personal fields a webhook's data carries (top level, or its ``identifiers``)."""
    names = {k for k in data if k in PERSONAL_FIELDS}
    nested = data.get("identifiers")
    if isinstance(nested, Mapping):
        names |= {k for k in nested if k in PERSONAL_FIELDS}
    return sorted(names)


def record_webhook(session: Session, *, customer_id: str, system: str, event_type: str | None,
                   data: Mapping[str, Any], at: datetime) -> None:
    """A webhook about the customer was delivered to ``system``."""
    purpose = data.get("purpose")
    session.execute(_INSERT, [{
        "customer_id": customer_id, "system": system[:64],
        "purpose": purpose if isinstance(purpose, str) else None, "kind": WEBHOOK,
        "fields": json.dumps(webhook_fields(data)), "event_type": event_type,
        "disclosed_at": at}])


def for_customer(session: Session, customer_id: str, *, purpose: str | None = None,
                 limit: int = MAX_ROWS) -> tuple[list[dict[str, Any]], bool]:
    """The customer's disclosures (``purpose``: only those for it), oldest first: at most
    the newest ``limit`` of each source; whether some were left out."""
    stored = select(Disclosure).where(Disclosure.customer_id == customer_id)
    checks = select(ConsentCheck).where(ConsentCheck.customer_id == customer_id,
                                        ConsentCheck.via.in_(_CHECK_VIA))
    if purpose is not None:
        stored = stored.where(Disclosure.purpose == purpose)
        checks = checks.where(ConsentCheck.purpose == purpose)
    rows = list(session.scalars(stored.order_by(Disclosure.disclosed_at.desc(),
                                                Disclosure.id.desc()).limit(limit + 1)))
    answers = [c for c in session.scalars(
        checks.order_by(ConsentCheck.checked_at.desc(), ConsentCheck.id.desc())
        .limit(limit + 1)) if c.via == "check" or not c.allowed]
    capped = len(rows) > limit or len(answers) > limit
    out = [_stored(r) for r in rows[:limit]] + [_answer(c) for c in answers[:limit]]
    out.sort(key=_when)
    return out, capped


def _when(row: Mapping[str, Any]) -> str:
    return str(row["disclosed_at"])


def _stored(row: Disclosure) -> dict[str, Any]:
    return {"disclosed_at": rfc3339(row.disclosed_at), "system": row.system,
            "purpose": row.purpose, "kind": row.kind,
            "fields": json.loads(row.fields) if row.fields else [],
            "event_type": row.event_type, "answer": None}


def _answer(row: ConsentCheck) -> dict[str, Any]:
    """A gate answer: the system learnt whether it may use the customer's data."""
    return {"disclosed_at": rfc3339(row.checked_at), "system": row.system,
            "purpose": row.purpose, "kind": CHECK, "fields": [], "event_type": None,
            "answer": "allowed" if row.allowed else f"denied ({row.reason})"}


def recipients(log: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The systems that received the customer's data, from the log: per system what they
    received (kinds), for which purposes, how often, first and last time."""
    by_system: dict[str, dict[str, Any]] = {}
    for row in log:
        entry = by_system.setdefault(row["system"], {
            "recipient": row["system"], "type": "registered system", "received": set(),
            "purposes": set(), "fields": set(), "count": 0,
            "first_at": row["disclosed_at"], "last_at": row["disclosed_at"]})
        entry["received"].add(row["kind"])
        if row["purpose"]:
            entry["purposes"].add(row["purpose"])
        entry["fields"].update(row["fields"])
        entry["count"] += 1
        entry["first_at"] = min(entry["first_at"], row["disclosed_at"])
        entry["last_at"] = max(entry["last_at"], row["disclosed_at"])
    return [{**e, "received": sorted(e["received"]), "purposes": sorted(e["purposes"]),
             "fields": sorted(e["fields"])} for _, e in sorted(by_system.items())]
