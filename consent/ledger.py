"""The consent ledger: every decision as an append-only event, and the current state.

Each decision is one ledger row, an update of the current-state row, a signed receipt,
an audit entry and a ``consent.changed`` event, all in the caller's transaction.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import Connection, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

import audit
from audit.chain import Unchained
from audit.clock import rfc3339, utcnow
from audit.ids import new_id
from audit.prepared import Prepared, time_reader
from consent import purposes as registry
from consent.domain_events import DomainEvent, emit
from consent.errors import InvalidInput, TokenInvalid
from consent.gate import Rule, State, Status, effective_status
from consent.models import (
    ConfirmationToken,
    ConsentEvent,
    ConsentState,
    Notice,
    PurposeRow,
    Receipt,
)
from consent.purposes import Purpose
from consent.receipts import Controller, ReceiptFacts, ReceiptSigner, build, sign

CONFIRMATION_TTL = timedelta(days=7)
_PURPOSE = select(PurposeRow.__table__).where(PurposeRow.__table__.c.key == bindparam("key"))
_NOTICE_SHA = select(Notice.sha256).where(Notice.version == bindparam("version"),
                                         Notice.language == bindparam("language"))
_CURRENT = (select(ConsentState.status, ConsentState.purpose_version, ConsentState.expires_at,
                   ConsentState.last_event_id)
            .where(ConsentState.customer_id == bindparam("customer_id"),
                   ConsentState.purpose == bindparam("purpose"))
            .with_for_update())


_EVENTS = cast(Table, ConsentEvent.__table__)
_STATES = cast(Table, ConsentState.__table__)
_RECEIPTS = cast(Table, Receipt.__table__)
_UPDATE_STATE = update(_STATES).where(_STATES.c.customer_id == bindparam("customer_id_"),
                                      _STATES.c.purpose == bindparam("purpose_"))
_STATE_VALUES = ("status", "purpose_version", "granted_at", "expires_at", "source",
                 "last_event_id", "updated_at")
# The writes of a group-committed decision (record_on), straight on the driver's cursor:
# SQLAlchemy's execution path costs more than the statements, under the write lock.
_INSERT_EVENT_RAW = Prepared(insert(_EVENTS))
_INSERT_STATE_RAW = Prepared(insert(_STATES))
_UPDATE_STATE_RAW = Prepared(
    update(_STATES).where(_STATES.c.customer_id == bindparam("customer_id_"),
                          _STATES.c.purpose == bindparam("purpose_"))
    .values({name: bindparam(f"v_{name}", type_=_STATES.c[name].type)
             for name in _STATE_VALUES}))
_INSERT_RECEIPT_RAW = Prepared(insert(_RECEIPTS))


class _Event(NamedTuple):
    """A ledger row as inserted (consent_events' columns)."""

    id: str
    customer_id: str
    purpose: str
    purpose_version: int
    event_type: str
    granted: bool
    status: str
    consent_type: str
    source: str
    collection_method: str
    notice_version: str | None
    notice_language: str | None
    notice_sha256: str | None
    evidence: str
    collected_at: datetime
    recorded_at: datetime
    expires_at: datetime | None
    actor_type: str
    actor_id: str | None
    receipt_id: str
FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True)
class Decision:
    """One consent decision as a service, the portal or a DPO submits it."""

    purpose: str
    granted: bool
    source: str
    collection_method: str = "api"
    notice_version: str | None = None
    notice_language: str = "en"
    collected_at: datetime | None = None
    consent_type: str = "regular"
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recorded:
    """The API's view of a recorded event."""

    id: str
    purpose: str
    purpose_version: int
    granted: bool
    status: str
    recorded_at: datetime
    receipt_id: str

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "purpose": self.purpose, "purpose_version": self.purpose_version,
                "granted": self.granted, "status": self.status,
                "recorded_at": rfc3339(self.recorded_at), "receipt_id": self.receipt_id}


@dataclass
class Ledger:
    """Records decisions. ``signer`` and ``controller`` make the receipts."""

    signer: ReceiptSigner
    controller: Controller

    # -- validation ----------------------------------------------------------------
    def _validate(self, session: Session | Connection, d: Decision, now: datetime,
                  cache: dict[str, Any] | None = None) -> tuple[Purpose, str | None]:
        """``cache``: purposes read before in the same transaction, by key (a
        group-committed batch reads each purpose once)."""
        errors: dict[str, list[str]] = {}
        purpose = None if cache is None else cache.get(d.purpose)
        if purpose is None:
            row = session.execute(_PURPOSE, {"key": d.purpose}).first()
            if row is None:
                raise InvalidInput({"purpose": ["no such purpose"]})
            purpose = registry.from_row(row)  # type: ignore[arg-type]
            if cache is not None:
                cache[d.purpose] = purpose
        if not purpose.needs_consent:
            errors["purpose"] = [f"the legal basis of this purpose is {purpose.legal_basis}, "
                                 "not consent: there is no consent to record"]
        if purpose.special_category and d.granted and d.consent_type != "explicit":
            errors["consent_type"] = ["this purpose uses special-category data: consent must be "
                                      "explicit (\"consent_type\": \"explicit\", Art. 9(2)(a))"]
        notice_sha = None
        if d.notice_version is not None:
            notice_sha = session.scalar(_NOTICE_SHA, {"version": d.notice_version,
                                                      "language": d.notice_language})
            if notice_sha is None:
                errors["notice_version"] = [f"no notice {d.notice_version!r} in "
                                            f"{d.notice_language!r}; publish it first"]
        if d.collected_at is not None and d.collected_at > now + FUTURE_TOLERANCE:
            errors["collected_at"] = ["lies in the future"]
        if errors:
            raise InvalidInput(errors)
        return purpose, notice_sha

    # -- recording -----------------------------------------------------------------
    def record(self, session: Session, customer_id: str, decision: Decision, *,
               actor: audit.Actor, now: datetime | None = None) -> Recorded:
        """Record one decision. Callers commit."""
        return self.record_many(session, customer_id, [decision], actor=actor, now=now)[0]

    def record_many(self, session: Session, customer_id: str, decisions: Sequence[Decision], *,
                    actor: audit.Actor, now: datetime | None = None) -> list[Recorded]:
        """Record decisions atomically: all of them, or none (InvalidInput names each index)."""
        now = now or utcnow()
        # The reads and writes below are Core statements, which do not autoflush: objects
        # the caller added (a purpose, a customer) must be in the database first.
        session.flush()
        checked: list[tuple[Purpose, str | None]] = []
        errors: dict[str, list[str]] = {}
        for i, d in enumerate(decisions):
            try:
                checked.append(self._validate(session, d, now))
            except InvalidInput as exc:
                prefix = "" if len(decisions) == 1 else f"decisions.{i}."
                errors.update({prefix + k: v for k, v in exc.errors.items()})
        if errors:
            raise InvalidInput(errors)
        out = []
        for d, (purpose, notice_sha) in zip(decisions, checked, strict=True):
            out.append(self._apply(session, customer_id, d, purpose, notice_sha, actor, now))
            if d.evidence.get("gpc") is True:
                self._honour_gpc(session, customer_id, d, actor, now)
        return out

    def _current(self, session: Session, customer_id: str, purpose: str) -> Any:
        """The current-state row (status, purpose_version, expires_at, last_event_id),
        locked for the rest of the transaction (PostgreSQL), or None."""
        return session.execute(_CURRENT, {"customer_id": customer_id, "purpose": purpose}).first()

    def _apply(self, session: Session, customer_id: str, d: Decision, purpose: Purpose,
               notice_sha: str | None, actor: audit.Actor, now: datetime,
               event_type: str | None = None) -> Recorded:
        now = _tick(session.info, now)
        current = self._current(session, customer_id, purpose.key)
        recorded, event, status = self._write(session, current, customer_id, d, purpose,
                                              notice_sha, actor, now, event_type)
        if current is not None:
            # An ORM copy of the row loaded earlier in this session would be stale now.
            loaded = session.identity_map.get(identity_key(ConsentState, (customer_id,
                                                                          purpose.key)))
            if loaded is not None:
                session.expire(loaded)
        audit.record(session, actor=actor, action=f"consent.{event.event_type}",
                     customer_id=customer_id, details=_audit_details(event, purpose, d))
        emit(session, _changed(event, purpose))
        if status is Status.PENDING_CONFIRMATION:
            self._request_confirmation(session, customer_id, purpose, event.id, now)
        return recorded

    def _write(self, conn: Session | Connection, current: Any, customer_id: str, d: Decision,
               purpose: Purpose, notice_sha: str | None, actor: audit.Actor, now: datetime,
               event_type: str | None, raw: bool = False) -> tuple[Recorded, _Event, Status]:
        """The ledger row, the current state and the receipt (Core statements on ``conn``,
        a session or a connection; ``raw``: on the connection's driver cursor); the caller
        adds the audit entry and the event."""
        rule = Rule(purpose.key, purpose.legal_basis, purpose.version, purpose.direct_marketing)
        before = effective_status(rule, _state(current), now)
        if d.granted:
            status = Status.PENDING_CONFIRMATION if purpose.double_opt_in else Status.GRANTED
            event_type = event_type or "grant"
        else:
            # A refusal where a consent was in force is a withdrawal (Art. 7(3)).
            status = Status.WITHDRAWN if before is Status.GRANTED else Status.REFUSED
            event_type = event_type or ("withdraw" if status is Status.WITHDRAWN else "refuse")
        expires_at = None
        if status is Status.GRANTED and purpose.consent_lifetime_days:
            expires_at = now + timedelta(days=purpose.consent_lifetime_days)
        event_id, receipt_id = new_id(), new_id()
        event = _Event(
            id=event_id, customer_id=customer_id, purpose=purpose.key,
            purpose_version=purpose.version, event_type=event_type, granted=d.granted,
            status=str(status), consent_type=d.consent_type, source=d.source,
            collection_method=d.collection_method, notice_version=d.notice_version,
            notice_language=d.notice_language if d.notice_version else None,
            notice_sha256=notice_sha, evidence=json.dumps(dict(d.evidence), sort_keys=True),
            collected_at=d.collected_at or now, recorded_at=now, expires_at=expires_at,
            actor_type=actor.kind, actor_id=actor.id, receipt_id=receipt_id)
        if raw and isinstance(conn, Connection):
            self._write_raw(conn, current, purpose, status, event)
        else:
            # Core statements, no ORM units of work: the event, the state, the receipt.
            conn.execute(insert(_EVENTS), event._asdict())
            self._set_state(conn, current, purpose, status, event)
            self._sign_receipt(conn, event, purpose)
        recorded = Recorded(event_id, purpose.key, purpose.version, d.granted, str(status), now,
                            receipt_id)
        return recorded, event, status

    def _write_raw(self, conn: Connection, current: Any, purpose: Purpose, status: Status,
                   event: _Event) -> None:
        """_write's statements on the driver's cursor (as _set_state, _sign_receipt)."""
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        dialect = conn.dialect
        _INSERT_EVENT_RAW.execute(cursor, dialect, event._asdict())
        values = _state_values(purpose, status, event)
        if current is None:
            _INSERT_STATE_RAW.execute(cursor, dialect, {"customer_id": event.customer_id,
                                                        "purpose": purpose.key, **values})
        else:
            _UPDATE_STATE_RAW.execute(cursor, dialect, {
                "customer_id_": event.customer_id, "purpose_": purpose.key,
                **{f"v_{k}": v for k, v in values.items()}})
        payload, jws = self._receipt(event, purpose)
        _INSERT_RECEIPT_RAW.execute(cursor, dialect, {
            "id": event.receipt_id, "event_id": event.id, "customer_id": event.customer_id,
            "payload": payload, "jws": jws, "created_at": event.recorded_at})

    def record_on(self, conn: Connection, shared: dict[str, Any], customer_id: str,
                  decision: Decision, *, actor: audit.Actor
                  ) -> tuple[Recorded, Unchained, DomainEvent] | None:
        """Record one decision on ``conn``, inside a group-committed transaction
        (audit.Appender.run): returns what it recorded, its audit entry and its
        ``consent.changed`` event, which the caller chains and writes to the outbox in the
        same transaction. None, having written nothing, when the decision needs more than
        this (Global Privacy Control, double opt-in): the caller then uses ``record``.
        InvalidInput as ``record``.
        """
        if decision.evidence.get("gpc") is True:
            return None
        now = utcnow()
        purpose, notice_sha = self._validate(conn, decision, now,
                                             shared.setdefault("consent.purposes", {}))
        if purpose.double_opt_in and decision.granted:
            return None
        now = _tick(shared, now)
        current = _current_raw(conn, customer_id, purpose.key)
        recorded, event, _status = self._write(conn, current, customer_id, decision, purpose,
                                               notice_sha, actor, now, None, raw=True)
        entry = audit.entry(actor, f"consent.{event.event_type}", customer_id,
                                _audit_details(event, purpose, decision))
        return recorded, entry, _changed(event, purpose)

    @staticmethod
    def _set_state(session: Session | Connection, current: Any, purpose: Purpose,
                   status: Status, event: _Event) -> None:
        values = _state_values(purpose, status, event)
        if current is None:
            session.execute(insert(_STATES), {"customer_id": event.customer_id,
                                              "purpose": purpose.key, **values})
        else:
            session.execute(_UPDATE_STATE, {"customer_id_": event.customer_id,
                                            "purpose_": purpose.key, **values})

    def _sign_receipt(self, session: Session | Connection, event: _Event, purpose: Purpose) -> None:
        payload, jws = self._receipt(event, purpose)
        session.execute(insert(_RECEIPTS), {
            "id": event.receipt_id, "event_id": event.id, "customer_id": event.customer_id,
            "payload": payload, "jws": jws, "created_at": event.recorded_at})

    def _receipt(self, event: _Event, purpose: Purpose) -> tuple[str, str]:
        """The receipt's payload JSON and its JWS."""
        facts = ReceiptFacts(
            receipt_id=event.receipt_id, event_id=event.id, customer_id=event.customer_id,
            event_type=event.event_type, status=event.status, consent_type=event.consent_type,
            collection_method=event.collection_method, source=event.source,
            recorded_at=event.recorded_at, expires_at=event.expires_at,
            notice_version=event.notice_version, notice_language=event.notice_language,
            notice_sha256=event.notice_sha256)
        return sign(build(facts, purpose, self.controller), self.signer)

    def _request_confirmation(self, session: Session, customer_id: str, purpose: Purpose,
                              event_id: str, now: datetime) -> None:
        token = secrets.token_urlsafe(32)
        session.add(ConfirmationToken(
            token_hash=hashlib.sha256(token.encode()).digest(), event_id=event_id,
            customer_id=customer_id, purpose=purpose.key, expires_at=now + CONFIRMATION_TTL))
        emit(session, DomainEvent(
            "consent.confirmation_requested",
            {"customer_id": customer_id, "purpose": purpose.key, "purpose_title": purpose.title,
             "expires_at": rfc3339(now + CONFIRMATION_TTL)},
            customer_id=customer_id, purpose=purpose.key, private={"token": token}))

    def _honour_gpc(self, session: Session, customer_id: str, d: Decision,
                    actor: audit.Actor, now: datetime) -> None:
        """Global Privacy Control: refuse every sale-or-sharing purpose, except one the
        customer explicitly granted in this very decision."""
        for purpose in registry.all_purposes(session):
            if not purpose.sale_or_sharing or not purpose.needs_consent:
                continue
            if purpose.key == d.purpose and d.granted:
                continue
            current = self._current(session, customer_id, purpose.key)
            if current is not None and current.status in (Status.REFUSED, Status.WITHDRAWN):
                continue
            refusal = Decision(purpose=purpose.key, granted=False, source=d.source,
                               collection_method="gpc_signal", evidence={"gpc": True})
            self._apply(session, customer_id, refusal, purpose, None, actor, now,
                        event_type="gpc_refusal")

    # -- double opt-in -------------------------------------------------------------
    def confirm(self, session: Session, token: str, *, now: datetime | None = None) -> Recorded:
        """The customer opened the emailed link: the pending consent now counts."""
        now = now or utcnow()
        digest = hashlib.sha256(token.encode()).digest()
        row = session.get(ConfirmationToken, digest, with_for_update=True)
        if row is None or row.used_at is not None or row.expires_at <= now:
            raise TokenInvalid("this confirmation link is unknown, already used or expired")
        current = self._current(session, row.customer_id, row.purpose)
        if current is None or current.status != Status.PENDING_CONFIRMATION \
                or current.last_event_id != row.event_id:
            raise TokenInvalid("this confirmation link was superseded by a later decision")
        row.used_at = now
        purpose = registry.get(session, row.purpose)
        pending = session.get(ConsentEvent, row.event_id)
        if pending is None:  # the ledger is append-only, so this cannot happen
            raise TokenInvalid("the decision behind this link no longer exists")
        actor = audit.Actor("customer", row.customer_id)
        recorded = self._apply_confirmation(session, pending, purpose, actor, now)
        return recorded

    def _apply_confirmation(self, session: Session, pending: ConsentEvent, purpose: Purpose,
                            actor: audit.Actor, now: datetime) -> Recorded:
        d = Decision(purpose=purpose.key, granted=True, source=pending.source,
                     collection_method="email_link", notice_version=pending.notice_version,
                     notice_language=pending.notice_language or "en",
                     consent_type=pending.consent_type, evidence=json.loads(pending.evidence))
        confirmed = replace(purpose, double_opt_in=False)
        return self._apply(session, pending.customer_id, d, confirmed, pending.notice_sha256,
                           actor, now, event_type="confirm")


def _tick(info: dict[str, Any], now: datetime) -> datetime:
    """Strictly increasing times within one transaction, so ledger order is total
    (``info``: the session's info, or the shared dict of a group-committed batch)."""
    last: datetime | None = info.get("consent.last_tick")
    if last is not None and now <= last:
        now = last + timedelta(microseconds=1)
    info["consent.last_tick"] = now
    return now


def _state_values(purpose: Purpose, status: Status, event: _Event) -> dict[str, Any]:
    """The current-state row's values after ``event`` (every column but the key)."""
    now = event.recorded_at
    return {"status": str(status), "purpose_version": purpose.version,
            "granted_at": now if status is Status.GRANTED else None,
            "expires_at": event.expires_at, "source": event.source,
            "last_event_id": event.id, "updated_at": now}


def _audit_details(event: _Event, purpose: Purpose, d: Decision) -> dict[str, Any]:
    return {"purpose": purpose.key, "purpose_version": purpose.version,
            "status": event.status, "event_id": event.id,
            "collection_method": d.collection_method}


def _changed(event: _Event, purpose: Purpose) -> DomainEvent:
    return DomainEvent(
        "consent.changed",
        {"customer_id": event.customer_id, "purpose": purpose.key,
         "purpose_version": purpose.version, "status": event.status, "event_id": event.id,
         "receipt_id": event.receipt_id, "recorded_at": rfc3339(event.recorded_at)},
        customer_id=event.customer_id, purpose=purpose.key)


class _Current(NamedTuple):
    """The current-state row as _CURRENT returns it."""

    status: str
    purpose_version: int
    expires_at: datetime | None
    last_event_id: str


_CURRENT_RAW = Prepared(_CURRENT)


def _current_raw(conn: Connection, customer_id: str, purpose: str) -> _Current | None:
    """_CURRENT on the driver's cursor (locked on PostgreSQL): SQLAlchemy's execution path
    costs several times the statement, and it runs while the batch holds the write lock."""
    dialect = conn.dialect
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    row = _CURRENT_RAW.execute(cursor, dialect, {"customer_id": customer_id,
                                                 "purpose": purpose}).fetchone()
    if row is None:
        return None
    status, version, expires_at, last_event_id = row
    return _Current(status, int(version), time_reader(dialect)(expires_at),
                    last_event_id)


def _state(row: Any) -> State | None:
    if row is None:
        return None
    return State(row.status, row.purpose_version, row.expires_at)


# -- reading -------------------------------------------------------------------------
def current_states(session: Session, customer_id: str,
                   now: datetime | None = None) -> list[dict[str, Any]]:
    """The current state for every purpose, as API.md describes it."""
    now = now or utcnow()
    rows = {r.purpose: r for r in session.scalars(
        select(ConsentState).where(ConsentState.customer_id == customer_id))}
    out = []
    for purpose in registry.all_purposes(session):
        row = rows.get(purpose.key)
        rule = Rule(purpose.key, purpose.legal_basis, purpose.version, purpose.direct_marketing)
        out.append({
            "purpose": purpose.key,
            "purpose_version": row.purpose_version if row else purpose.version,
            "legal_basis": str(purpose.legal_basis),
            "status": str(effective_status(rule, _state(row), now)),
            "granted_at": rfc3339(row.granted_at) if row else None,
            "expires_at": rfc3339(row.expires_at) if row else None,
            "source": row.source if row else None,
        })
    return out


def history(session: Session, customer_id: str) -> list[dict[str, Any]]:
    """Every event, oldest first."""
    events = session.scalars(select(ConsentEvent).where(ConsentEvent.customer_id == customer_id)
                             .order_by(ConsentEvent.recorded_at, ConsentEvent.id))
    return [event_public(e) for e in events]


def event_public(e: ConsentEvent) -> dict[str, Any]:
    return {
        "id": e.id, "purpose": e.purpose, "purpose_version": e.purpose_version,
        "event_type": e.event_type, "granted": e.granted, "status": e.status,
        "consent_type": e.consent_type, "source": e.source,
        "collection_method": e.collection_method, "notice_version": e.notice_version,
        "notice_language": e.notice_language, "notice_sha256": e.notice_sha256,
        "evidence": json.loads(e.evidence), "collected_at": rfc3339(e.collected_at),
        "recorded_at": rfc3339(e.recorded_at), "expires_at": rfc3339(e.expires_at),
        "actor": {"type": e.actor_type, "id": e.actor_id}, "receipt_id": e.receipt_id,
    }


def state_at(session: Session, customer_id: str, purpose: str, at: datetime) -> State | None:
    """The stored state as it stood at ``at``, from the ledger."""
    event = session.scalars(
        select(ConsentEvent).where(ConsentEvent.customer_id == customer_id,
                                   ConsentEvent.purpose == purpose,
                                   ConsentEvent.recorded_at <= at)
        .order_by(ConsentEvent.recorded_at.desc(), ConsentEvent.id.desc()).limit(1)).first()
    if event is None:
        return None
    return State(event.status, event.purpose_version, event.expires_at)


def receipt(session: Session, receipt_id: str) -> Receipt | None:
    return session.get(Receipt, receipt_id)
