"""The shop's cookie banner: what it asks, what a visitor answered, and whose answer it is.

ePrivacy Art. 5(3): nothing but strictly necessary storage before a choice. A choice is
kept at most 13 months and asked again when the notice changes (CNIL 2020-092). A browser
sending Global Privacy Control gets every category with a sale-or-sharing purpose refused
without being asked (R-SIG-01). When the shop says which customer a visitor is, the
visitor's current choice becomes ledger decisions for that customer's cookie purposes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import audit
from audit.clock import utcnow
from audit.ids import new_id
from consent import purposes as registry
from consent.errors import InvalidInput
from consent.ledger import Decision, Ledger, Recorded
from consent.models import BannerChoice
from consent.purposes import CookieCategory, LegalBasis, Purpose

#: 13 months (395 days): the longest a cookie choice may be relied on (CNIL 2020-092)
CHOICE_LIFETIME = timedelta(days=395)
ACTIONS = ("accept_all", "reject_all", "settings")
ASKED = tuple(c.value for c in CookieCategory if c is not CookieCategory.NECESSARY)


@dataclass(frozen=True)
class Category:
    """One category the banner asks about, with the purposes it stands for."""

    key: str
    purposes: tuple[Purpose, ...]

    @property
    def sale_or_sharing(self) -> bool:
        return any(p.sale_or_sharing for p in self.purposes)


def categories(session: Session) -> list[Category]:
    """The categories with at least one consent purpose, in the banner's order."""
    found: dict[str, list[Purpose]] = {}
    for purpose in registry.all_purposes(session):
        if purpose.cookie_category in ASKED and purpose.legal_basis is LegalBasis.CONSENT:
            found.setdefault(str(purpose.cookie_category), []).append(purpose)
    return [Category(key, tuple(found[key])) for key in ASKED if key in found]


def _visitor(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise InvalidInput({"visitor_id": ["a UUID the banner made"]}) from None


def record_choice(session: Session, *, visitor_id: str, choices: Mapping[str, bool],
                  action: str, notice_version: str | None, gpc: bool,
                  now: datetime | None = None) -> BannerChoice:
    """Keep a visitor's answer. Categories not named are refused (silence is no consent,
    R-CONSENT-01); with GPC, sale-or-sharing categories are refused whatever was sent."""
    now = now or utcnow()
    visitor = _visitor(visitor_id)
    if action not in ACTIONS:
        raise InvalidInput({"action": ["one of " + ", ".join(ACTIONS)]})
    asked = {c.key: c for c in categories(session)}
    unknown = sorted(set(choices) - set(asked))
    if unknown:
        raise InvalidInput({"categories": ["not asked by the banner: " + ", ".join(unknown)]})
    answer = {key: bool(choices.get(key, False)) and not (gpc and cat.sale_or_sharing)
              for key, cat in asked.items()}
    row = BannerChoice(id=new_id(), visitor_id=visitor, categories=json.dumps(answer),
                       notice_version=notice_version, gpc=gpc, action=action,
                       created_at=now, expires_at=now + CHOICE_LIFETIME)
    session.add(row)
    session.flush()
    audit.record(session, actor=audit.Actor("system", "cookie-banner"),
                 action="banner.choice_recorded",
                 details={"choice_id": row.id, "action": action, "gpc": gpc,
                          "allowed": sorted(k for k, v in answer.items() if v)})
    return row


def current_choice(session: Session, visitor_id: str,
                   now: datetime | None = None) -> BannerChoice | None:
    """The visitor's newest choice that has not expired."""
    now = now or utcnow()
    return session.scalars(
        select(BannerChoice).where(BannerChoice.visitor_id == _visitor(visitor_id),
                                   BannerChoice.expires_at > now)
        .order_by(BannerChoice.created_at.desc(), BannerChoice.id.desc()).limit(1)).first()


def link_visitor(session: Session, ledger: Ledger, *, visitor_id: str, customer_id: str,
                 actor: audit.Actor, now: datetime | None = None) -> list[Recorded]:
    """The visitor signed in as ``customer_id``: their current banner choice becomes one
    ledger decision per purpose of each category it answered, with the choice as proof."""
    choice = current_choice(session, visitor_id, now)
    if choice is None:
        return []
    answer: dict[str, bool] = json.loads(choice.categories)
    evidence: dict[str, Any] = {"banner_choice_id": choice.id, "visitor_id": choice.visitor_id,
                                "banner_action": choice.action,
                                "chosen_at": choice.created_at.isoformat()}
    if choice.gpc:
        evidence["gpc"] = True
    decisions = [Decision(purpose=p.key, granted=answer[cat.key], source="cookie_banner",
                          collection_method="cookie_banner",
                          notice_version=choice.notice_version, collected_at=choice.created_at,
                          evidence=evidence)
                 for cat in categories(session) if cat.key in answer for p in cat.purposes]
    recorded = ledger.record_many(session, customer_id, decisions, actor=actor) if decisions else []
    choice.customer_id = customer_id
    choice.linked_at = now or utcnow()
    audit.record(session, actor=actor, action="banner.choice_linked", customer_id=customer_id,
                 details={"choice_id": choice.id, "decisions": len(recorded)})
    return recorded
