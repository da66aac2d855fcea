"""The gate's hot path: one prebuilt query gathers what ``consent.gate.decide`` needs.

No ORM objects, no decryption, no cache: every check reads the committed state, so a
withdrawal is visible to the very next check in every process. Statements are built
once with bind parameters, so SQLAlchemy compiles each of them once per process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, exists, or_, select
from sqlalchemy.orm import Session

from consent import flags as flag_service
from consent import ledger
from consent import purposes as registry
from consent.errors import UnknownPurpose
from consent.gate import ALL_DIRECT_MARKETING, UNKNOWN, Decision, Flags, Rule, State, decide
from consent.models import ConsentState, Objection, ProcessingFlags, PurposeRow
from consent.purposes import LegalBasis
from privacy_hub.vault.models import Customer

CHUNK = 5000
_P: Any = bindparam("purpose")


@dataclass(frozen=True)
class PurposeInfo:
    rule: Rule
    fields: str  # JSON list


def _inputs_columns() -> list[Any]:
    o = Objection
    return [
        Customer.id, Customer.status.label("customer_status"),
        ConsentState.status, ConsentState.purpose_version, ConsentState.expires_at,
        ProcessingFlags.restricted, ProcessingFlags.erased,
        exists().where(o.customer_id == Customer.id, o.purpose == _P).label("named"),
        exists().where(o.customer_id == Customer.id, o.purpose == ALL_DIRECT_MARKETING)
        .label("all_dm"),
        exists().where(o.customer_id == Customer.id, o.purpose == _P,
                       o.compelling_grounds.is_not(None)).label("grounds"),
    ]


_PURPOSE_COLUMNS = [PurposeRow.legal_basis, PurposeRow.version, PurposeRow.direct_marketing,
                    PurposeRow.fields]
_STATE_JOIN = and_(ConsentState.customer_id == Customer.id, ConsentState.purpose == _P)

#: one round trip for a single check: the purpose, and the customer if they exist
_SINGLE = (select(*_PURPOSE_COLUMNS, *_inputs_columns())
           .select_from(PurposeRow)
           .outerjoin(Customer, Customer.id == bindparam("customer_id"))
           .outerjoin(ConsentState, _STATE_JOIN)
           .outerjoin(ProcessingFlags, ProcessingFlags.customer_id == Customer.id)
           .where(PurposeRow.key == _P))
_PURPOSE = select(*_PURPOSE_COLUMNS).where(PurposeRow.key == _P)
_MANY = (select(*_inputs_columns())
         .outerjoin(ConsentState, _STATE_JOIN)
         .outerjoin(ProcessingFlags, ProcessingFlags.customer_id == Customer.id)
         .where(Customer.id.in_(bindparam("ids", expanding=True))))
#: audiences page through the consent-state index for consent purposes (ordered by its
#: customer id, so no sort of all granted rows), and through customers otherwise
_AUDIENCE_CONSENT = (
    select(*_inputs_columns())
    .select_from(ConsentState)
    .join(Customer, Customer.id == ConsentState.customer_id)
    .outerjoin(ProcessingFlags, ProcessingFlags.customer_id == ConsentState.customer_id)
    .where(ConsentState.purpose == _P, ConsentState.status == "granted",
           ConsentState.purpose_version >= bindparam("version"),
           or_(ConsentState.expires_at.is_(None), ConsentState.expires_at > bindparam("now")),
           Customer.status != "erased", ConsentState.customer_id > bindparam("after"))
    .order_by(ConsentState.customer_id).limit(bindparam("n")))
_AUDIENCE_ALL = (
    select(*_inputs_columns())
    .outerjoin(ConsentState, _STATE_JOIN)
    .outerjoin(ProcessingFlags, ProcessingFlags.customer_id == Customer.id)
    .where(Customer.status != "erased", Customer.id > bindparam("after"))
    .order_by(Customer.id).limit(bindparam("n")))


def _rule(key: str, row: Any) -> Rule:
    return Rule(key, LegalBasis(row.legal_basis), row.version, bool(row.direct_marketing))


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


def _key(row: Any) -> tuple[Any, ...]:
    """What the decision depends on (the customer id does not)."""
    return (row.customer_status, row.status, row.purpose_version, row.expires_at,
            row.restricted, row.erased, row.named, row.all_dm, row.grounds)


class Gatekeeper:
    """Answers "may we?" for one customer, many, or a whole audience."""

    def rule(self, session: Session, purpose: str) -> PurposeInfo:
        row = session.connection().execute(_PURPOSE, {"purpose": purpose}).first()
        if row is None:
            raise UnknownPurpose(purpose)
        return PurposeInfo(_rule(purpose, row), row.fields)

    def check(self, session: Session, customer_id: str, purpose: str,
              now: datetime) -> Decision:
        row = session.connection().execute(
            _SINGLE, {"purpose": purpose, "customer_id": customer_id}).first()
        if row is None:
            raise UnknownPurpose(purpose)
        rule = _rule(purpose, row)
        if row.id is None:
            return decide(rule, None, UNKNOWN, now)
        state, flags = _inputs(row, purpose)
        return decide(rule, state, flags, now)

    def check_many(self, session: Session, customer_ids: Sequence[str], purpose: str,
                   now: datetime) -> list[Decision]:
        rule = self.rule(session, purpose).rule
        unknown = decide(rule, None, UNKNOWN, now)
        found: dict[str, Decision] = {}
        memo: dict[tuple[Any, ...], Decision] = {}
        unique = list(dict.fromkeys(customer_ids))
        conn = session.connection()
        for start in range(0, len(unique), CHUNK):
            rows = conn.execute(_MANY, {"purpose": purpose, "ids": unique[start:start + CHUNK]})
            for row in rows:
                k = _key(row)
                d = memo.get(k)
                if d is None:
                    state, flags = _inputs(row, purpose)
                    d = memo[k] = decide(rule, state, flags, now)
                found[row.id] = d
        return [found.get(cid, unknown) for cid in customer_ids]

    def audience(self, session: Session, purpose: str, now: datetime, *, after: str | None,
                 limit: int) -> tuple[list[str], str | None]:
        """Ids allowed for ``purpose`` among all customers, in id order, one page."""
        rule = self.rule(session, purpose).rule
        consent = rule.legal_basis is LegalBasis.CONSENT
        stmt = _AUDIENCE_CONSENT if consent else _AUDIENCE_ALL
        conn = session.connection()
        allowed: list[str] = []
        memo: dict[tuple[Any, ...], bool] = {}
        cursor = after or ""
        batch = max(limit, 1000)
        while True:
            params: dict[str, Any] = {"purpose": purpose, "after": cursor, "n": batch}
            if consent:
                params.update(version=rule.version, now=now)
            rows = conn.execute(stmt, params).all()
            for row in rows:
                cursor = row.id
                k = _key(row)
                ok = memo.get(k)
                if ok is None:
                    state, flags = _inputs(row, purpose)
                    ok = memo[k] = decide(rule, state, flags, now).allowed
                if ok:
                    allowed.append(row.id)
                    if len(allowed) == limit:
                        return allowed, row.id
            if len(rows) < batch:
                return allowed, None

    def check_at(self, session: Session, customer_id: str, purpose: str, at: datetime) -> Decision:
        """The answer that held at ``at``, rebuilt from the ledger and the flag history."""
        current = self.rule(session, purpose)
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
