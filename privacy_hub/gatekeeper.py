"""The gate's hot path: one query gathers what ``consent.gate.decide`` needs.

No ORM objects, no decryption, no cache: every check reads the committed state, so a
withdrawal is visible to the very next check in every process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from consent import flags as flag_service
from consent import ledger
from consent import purposes as registry
from consent.gate import ALL_DIRECT_MARKETING, UNKNOWN, Decision, Flags, Rule, State, decide
from consent.models import ConsentState, Objection, ProcessingFlags, PurposeRow
from consent.purposes import LegalBasis
from privacy_hub.vault.models import Customer

CHUNK = 5000


@dataclass(frozen=True)
class PurposeInfo:
    rule: Rule
    fields: str  # JSON list


def _purpose(session: Session, key: str) -> PurposeInfo:
    row = session.execute(select(PurposeRow.legal_basis, PurposeRow.version,
                                 PurposeRow.direct_marketing, PurposeRow.fields)
                          .where(PurposeRow.key == key)).first()
    if row is None:
        from consent.errors import UnknownPurpose

        raise UnknownPurpose(key)
    return PurposeInfo(Rule(key, LegalBasis(row.legal_basis), row.version,
                            bool(row.direct_marketing)), row.fields)


def _columns(purpose: str) -> list[Any]:
    o = Objection
    return [
        Customer.id, Customer.status.label("customer_status"),
        ConsentState.status, ConsentState.purpose_version, ConsentState.expires_at,
        ProcessingFlags.restricted, ProcessingFlags.erased,
        exists().where(o.customer_id == Customer.id, o.purpose == purpose).label("named"),
        exists().where(o.customer_id == Customer.id, o.purpose == ALL_DIRECT_MARKETING)
        .label("all_dm"),
        exists().where(o.customer_id == Customer.id, o.purpose == purpose,
                       o.compelling_grounds.is_not(None)).label("grounds"),
    ]


def _joined(purpose: str) -> Any:
    return (select(*_columns(purpose))
            .outerjoin(ConsentState, and_(ConsentState.customer_id == Customer.id,
                                          ConsentState.purpose == purpose))
            .outerjoin(ProcessingFlags, ProcessingFlags.customer_id == Customer.id))


def _inputs(row: Any, purpose: str) -> tuple[State | None, Flags]:
    state = None if row.status is None else State(row.status, row.purpose_version, row.expires_at)
    objections = set()
    if row.named:
        objections.add(purpose)
    if row.all_dm:
        objections.add(ALL_DIRECT_MARKETING)
    flags = Flags(exists=True, erased=bool(row.erased) or row.customer_status == "erased",
                  restricted=bool(row.restricted), objections=frozenset(objections),
                  compelling_grounds=frozenset({purpose}) if row.grounds else frozenset())
    return state, flags


class Gatekeeper:
    """Answers "may we?" for one customer, many, or a whole audience."""

    def rule(self, session: Session, purpose: str) -> PurposeInfo:
        return _purpose(session, purpose)

    def check(self, session: Session, customer_id: str, purpose: str,
              now: datetime) -> Decision:
        info = _purpose(session, purpose)
        row = session.execute(_joined(purpose).where(Customer.id == customer_id)).first()
        if row is None:
            return decide(info.rule, None, UNKNOWN, now)
        state, flags = _inputs(row, purpose)
        return decide(info.rule, state, flags, now)

    def check_many(self, session: Session, customer_ids: Sequence[str], purpose: str,
                   now: datetime) -> list[Decision]:
        info = _purpose(session, purpose)
        found: dict[str, tuple[State | None, Flags]] = {}
        unique = list(dict.fromkeys(customer_ids))
        for start in range(0, len(unique), CHUNK):
            chunk = unique[start:start + CHUNK]
            for row in session.execute(_joined(purpose).where(Customer.id.in_(chunk))):
                found[row.id] = _inputs(row, purpose)
        out = []
        for cid in customer_ids:
            hit = found.get(cid)
            out.append(decide(info.rule, None, UNKNOWN, now) if hit is None
                       else decide(info.rule, hit[0], hit[1], now))
        return out

    def audience(self, session: Session, purpose: str, now: datetime, *, after: str | None,
                 limit: int) -> tuple[list[str], str | None]:
        """Ids allowed for ``purpose`` among all customers, in id order, one page."""
        info = _purpose(session, purpose)
        rule = info.rule
        stmt = _joined(purpose).where(Customer.status != "erased")
        if rule.legal_basis is LegalBasis.CONSENT:
            # Necessary conditions in SQL; decide() below makes the exact call.
            stmt = stmt.where(ConsentState.status == "granted",
                              ConsentState.purpose_version >= rule.version,
                              or_(ConsentState.expires_at.is_(None), ConsentState.expires_at > now))
        allowed: list[str] = []
        cursor = after
        batch = max(limit, 1000)
        while True:
            page = stmt if cursor is None else stmt.where(Customer.id > cursor)
            rows = session.execute(page.order_by(Customer.id).limit(batch)).all()
            for row in rows:
                cursor = row.id
                state, flags = _inputs(row, purpose)
                if decide(rule, state, flags, now).allowed:
                    allowed.append(row.id)
                    if len(allowed) == limit:
                        return allowed, row.id
            if len(rows) < batch:
                return allowed, None

    def check_at(self, session: Session, customer_id: str, purpose: str, at: datetime) -> Decision:
        """The answer that held at ``at``, rebuilt from the ledger and the flag history."""
        current = _purpose(session, purpose)
        version = registry.version_at(session, purpose, at)
        customer = session.execute(select(Customer.created_at, Customer.erased_at)
                                   .where(Customer.id == customer_id)).first()
        rule = Rule(purpose, current.rule.legal_basis, version or 1, current.rule.direct_marketing)
        if customer is None or customer.created_at > at:
            return decide(rule, None, UNKNOWN, at)
        flags = flag_service.flags_at(session, customer_id, at)
        if customer.erased_at is not None and customer.erased_at <= at:
            flags = Flags(exists=True, erased=True)
        return decide(rule, ledger.state_at(session, customer_id, purpose, at), flags, at)

