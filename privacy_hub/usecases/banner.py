"""The shop's cookie banner: what it asks, keeping a visitor's answer, and making that
answer a customer's consent once the shop says who signed in."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

import audit
from audit.clock import rfc3339
from consent import banner, notices
from privacy_hub.hub import Hub
from privacy_hub.usecases.consents import consenting_customer
from privacy_hub.usecases.customers import canonical_id

CHOICE_LIFETIME_DAYS = banner.CHOICE_LIFETIME.days
ACTIONS = banner.ACTIONS


def questions(session: Session, language: str) -> dict[str, Any]:
    """The categories the banner asks about, with their purposes (texts in ``language``
    where published), and the notice version a choice rests on (a choice made under
    another version is asked again)."""
    notice = notices.latest(session, language)
    return {
        "notice_version": notice.version if notice else None,
        "max_age_days": CHOICE_LIFETIME_DAYS,
        "categories": [{
            "key": cat.key, "sale_or_sharing": cat.sale_or_sharing,
            "purposes": [{"key": p.key, "title": text.title, "description": text.description,
                          "recipients": list(p.recipients)}
                         for p in cat.purposes for text in [p.text(language)]],
        } for cat in banner.categories(session)],
    }


def answer(session: Session, *, visitor_id: str, choices: Mapping[str, bool], action: str,
           notice_version: str | None, gpc: bool) -> dict[str, Any]:
    """Keep a visitor's answer (GPC refuses sale or sharing whatever was chosen)."""
    row = banner.record_choice(session, visitor_id=visitor_id, choices=choices, action=action,
                               notice_version=notice_version, gpc=gpc)
    return {"id": row.id, "categories": json.loads(row.categories),
            "expires_at": rfc3339(row.expires_at)}


def link_visitor(hub: Hub, session: Session, visitor_id: str, customer_id: str, *,
                 actor: audit.Actor) -> list[dict[str, Any]]:
    """The visitor signed in as this customer: their current answer becomes the
    customer's consent decisions; the recorded events (none without a current answer)."""
    cid = canonical_id(customer_id)
    consenting_customer(hub, cid)
    recorded = banner.link_visitor(session, hub.ledger, visitor_id=visitor_id, customer_id=cid,
                                   actor=actor)
    return [r.public() for r in recorded]
