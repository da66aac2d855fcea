"""The consent ledger: every consent decision as an append-only ledger event and the
current state it leaves (reading both back: ``consent.ledger_reads``).

Each decision is one ledger event (``ConsentEvent``), an update of the current-state row,
a signed receipt, an audit entry and a ``consent.changed`` domain event, all in the
caller's transaction. The rows themselves are written by ``consent.ledger_rows``; the
double opt-in link is ``consent.confirmation``; the decision's evidence, sealed apart from
the event, ``consent.proof``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

import audit
from audit.chain import Unchained
from audit.clock import rfc3339, utcnow
from audit.ids import new_id
from consent import confirmation, event_chain, ledger_rows, proof
from consent import purposes as registry
from consent.domain_events import DomainEvent, emit
from consent.errors import InvalidInput, TokenInvalid
from consent.gate import Rule, Status, effective_status
from consent.ledger_reads import state_of
from consent.ledger_rows import LedgerRow
from consent.models import ConsentEvent, ConsentState, Notice, PurposeRow
from consent.proof import ProofKeys, Seal
from consent.purposes import Purpose
from consent.receipts import Controller, ReceiptSigner

#: how far in the future a client-supplied time may lie (clock skew)
FUTURE_TOLERANCE = timedelta(minutes=5)
_PURPOSE = select(PurposeRow.__table__).where(PurposeRow.__table__.c.key == bindparam("key"))
_NOTICE_SHA = select(Notice.sha256).where(Notice.version == bindparam("version"),
                                         Notice.language == bindparam("language"))


@dataclass(frozen=True)
class Decision:
    """One consent decision (API.md's "consent decision"), as a service, the portal or a
    DPO submits it: what the ledger records."""

    purpose: str
    granted: bool
    source: str
    collection_method: str = "api"
    notice_version: str | None = None
    notice_language: str = "en"
    collected_at: datetime | None = None
    consent_type: str = "regular"
    evidence: Mapping[str, Any] = field(default_factory=dict)
    #: the language of the page the decision was made on: the double opt-in mail's
    locale: str | None = None


@dataclass(frozen=True)
class Recorded:
    """A recorded ledger event, as the API returns it."""

    id: str
    purpose: str
    purpose_version: int
    granted: bool
    status: str
    recorded_at: datetime
    receipt_id: str

    def public(self) -> dict[str, Any]:
        """The API's JSON of the ledger event."""
        return {"id": self.id, "purpose": self.purpose, "purpose_version": self.purpose_version,
                "granted": self.granted, "status": self.status,
                "recorded_at": rfc3339(self.recorded_at), "receipt_id": self.receipt_id}


@dataclass
class Ledger:
    """Records consent decisions. ``signer`` and ``controller`` make the receipts; ``proof``
    seals each decision's evidence under the customer's key (none: evidence is refused)."""

    signer: ReceiptSigner
    controller: Controller
    proof: ProofKeys | None = None

    # -- validation ----------------------------------------------------------------
    def _validate(self, session: Session | Connection, d: Decision, now: datetime,
                  cache: dict[str, Any] | None = None) -> tuple[Purpose, str | None]:
        """The decision's purpose and the SHA-256 of its notice, or InvalidInput.
        ``cache``: purposes read before in the same transaction, by key (a
        group-committed batch reads each purpose once)."""
        purpose, notice_sha, errors = self._checked(session, d, now, cache)
        if errors or purpose is None:
            raise InvalidInput(errors)
        return purpose, notice_sha

    def problems(self, session: Session, d: Decision,
                 now: datetime | None = None) -> dict[str, list[str]]:
        """What keeps ``d`` from being recorded, by field; empty when nothing does.
        Writes nothing."""
        return self._checked(session, d, now or utcnow())[2]

    def purpose_problems(self, session: Session, key: str) -> dict[str, list[str]]:
        """What keeps any decision on the purpose ``key`` from being recorded (no such
        purpose, or a legal basis other than consent), by field. Writes nothing."""
        return _purpose_errors(self._purpose(session, key, None))

    @staticmethod
    def _purpose(session: Session | Connection, key: str,
                 cache: dict[str, Any] | None) -> Purpose | None:
        purpose = None if cache is None else cache.get(key)
        if purpose is None:
            row = session.execute(_PURPOSE, {"key": key}).first()
            if row is None:
                return None
            purpose = registry.from_row(row)  # type: ignore[arg-type]
            if cache is not None:
                cache[key] = purpose
        return purpose

    def _checked(self, session: Session | Connection, d: Decision, now: datetime,
                 cache: dict[str, Any] | None = None
                 ) -> tuple[Purpose | None, str | None, dict[str, list[str]]]:
        purpose = self._purpose(session, d.purpose, cache)
        errors = _purpose_errors(purpose)
        if purpose is None:
            return None, None, errors
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
        return purpose, notice_sha, errors

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

    def record_on(self, conn: Connection, shared: dict[str, Any], customer_id: str,
                  decision: Decision, *, actor: audit.Actor, seal: Seal | None = None
                  ) -> tuple[Recorded, Unchained, DomainEvent] | None:
        """Record one decision on ``conn``, inside a group-committed transaction
        (audit.Appender.run): returns what it recorded, its audit entry and its
        ``consent.changed`` domain event, which the caller chains and writes to the outbox
        in the same transaction. None, having written nothing, when the decision needs
        more than this (Global Privacy Control, double opt-in, evidence without ``seal``,
        the customer's key the caller read before): the caller then uses ``record``.
        InvalidInput as ``record``.
        """
        if decision.evidence.get("gpc") is True or (decision.evidence and seal is None):
            return None
        now = utcnow()
        purpose, notice_sha = self._validate(conn, decision, now,
                                             shared.setdefault("consent.purposes", {}))
        if purpose.double_opt_in and decision.granted:
            return None
        current = ledger_rows.current_state_raw(conn, customer_id, purpose.key)
        now = _tick(shared, ledger_rows.after_current(current, now))
        recorded, row, _status = self._write(conn, current, customer_id, decision, purpose,
                                             notice_sha, actor, now, None, raw=True, seal=seal)
        entry = audit.entry(actor, f"consent.{row.event_type}", customer_id,
                                _audit_details(row, purpose, decision))
        return recorded, entry, _changed(row, purpose)

    def _apply(self, session: Session, customer_id: str, d: Decision, purpose: Purpose,
               notice_sha: str | None, actor: audit.Actor, now: datetime,
               event_type: str | None = None) -> Recorded:
        """Write one validated decision with its audit entry and domain events."""
        current = ledger_rows.current_state(session, customer_id, purpose.key)
        now = _tick(session.info, ledger_rows.after_current(current, now))
        seal = self._sealer(session, customer_id) if d.evidence else None
        recorded, row, status = self._write(session, current, customer_id, d, purpose,
                                            notice_sha, actor, now, event_type, seal=seal)
        if current is not None:
            # An ORM copy of the row loaded earlier in this session would be stale now.
            loaded = session.identity_map.get(identity_key(ConsentState, (customer_id,
                                                                          purpose.key)))
            if loaded is not None:
                session.expire(loaded)
        audit.record(session, actor=actor, action=f"consent.{row.event_type}",
                     customer_id=customer_id, details=_audit_details(row, purpose, d))
        emit(session, _changed(row, purpose))
        if status is Status.PENDING_CONFIRMATION:
            confirmation.request_confirmation(session, customer_id, purpose, row.id, now,
                                              locale=d.locale)
        return recorded

    def _write(self, conn: Session | Connection, current: Any, customer_id: str, d: Decision,
               purpose: Purpose, notice_sha: str | None, actor: audit.Actor, now: datetime,
               event_type: str | None, raw: bool = False, seal: Seal | None = None
               ) -> tuple[Recorded, LedgerRow, Status]:
        """The ledger event, the current state, the receipt and the evidence, sealed with
        ``seal`` (on ``conn``, a session or a connection; ``raw``: on the connection's
        driver cursor); the caller adds the audit entry and the domain event."""
        rule = Rule(purpose.key, purpose.legal_basis, purpose.version, purpose.direct_marketing)
        before = effective_status(rule, state_of(current), now)
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
        evidence = proof.canonical(d.evidence) if d.evidence else None
        row = LedgerRow(
            id=event_id, customer_id=customer_id, purpose=purpose.key,
            purpose_version=purpose.version, event_type=event_type, granted=d.granted,
            status=str(status), consent_type=d.consent_type, source=d.source,
            collection_method=d.collection_method, notice_version=d.notice_version,
            notice_language=d.notice_language if d.notice_version else None,
            notice_sha256=notice_sha,
            evidence_sha256=None if evidence is None else proof.sha256_of(evidence),
            collected_at=d.collected_at or now, recorded_at=now, expires_at=expires_at,
            actor_type=actor.kind, actor_id=actor.id, receipt_id=receipt_id)
        receipt = ledger_rows.signed_receipt(row, purpose, self.controller, self.signer)
        if raw and isinstance(conn, Connection):
            ledger_rows.write_raw(conn, current, purpose, status, row, receipt)
        else:
            ledger_rows.write(conn, current, purpose, status, row, receipt)
        if evidence is not None:
            proof.insert_row(conn, proof.evidence_row(event_id, customer_id, evidence, seal, now),
                             raw=raw)
        recorded = Recorded(event_id, purpose.key, purpose.version, d.granted, str(status), now,
                            receipt_id)
        return recorded, row, status

    def _sealer(self, session: Session, customer_id: str) -> Seal | None:
        if self.proof is None:
            raise InvalidInput({"evidence": ["this ledger keeps no evidence"]})
        return self.proof.sealer(session, customer_id)

    def _honour_gpc(self, session: Session, customer_id: str, d: Decision,
                    actor: audit.Actor, now: datetime) -> None:
        """Global Privacy Control: refuse every sale-or-sharing purpose, except one the
        customer explicitly granted in this very decision."""
        for purpose in registry.all_purposes(session):
            if not purpose.sale_or_sharing or not purpose.needs_consent:
                continue
            if purpose.key == d.purpose and d.granted:
                continue
            current = ledger_rows.current_state(session, customer_id, purpose.key)
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
        link = confirmation.use_token(session, token, now)
        purpose = registry.get(session, link.purpose)
        pending = session.get(ConsentEvent, link.event_id)
        if pending is None:  # the ledger is append-only, so this cannot happen
            raise TokenInvalid("the decision behind this link no longer exists")
        kept = proof.read(session, pending.customer_id, [pending], self.proof).get(pending.id)
        d = Decision(purpose=purpose.key, granted=True, source=pending.source,
                     collection_method="email_link", notice_version=pending.notice_version,
                     notice_language=pending.notice_language or "en",
                     consent_type=pending.consent_type,
                     evidence=(kept.value or {}) if kept is not None else {})
        confirmed = replace(purpose, double_opt_in=False)
        return self._apply(session, pending.customer_id, d, confirmed, pending.notice_sha256,
                           audit.Actor("customer", link.customer_id), now,
                           event_type="confirm")


def _purpose_errors(purpose: Purpose | None) -> dict[str, list[str]]:
    if purpose is None:
        return {"purpose": ["no such purpose"]}
    if not purpose.needs_consent:
        return {"purpose": [f"the legal basis of this purpose is {purpose.legal_basis}, "
                            "not consent: there is no consent to record"]}
    return {}


def _tick(info: dict[str, Any], now: datetime) -> datetime:
    """Strictly increasing times within one transaction, so ledger order is total
    (``info``: the session's info, or the shared dict of a group-committed batch)."""
    last: datetime | None = info.get("consent.last_tick")
    if last is not None and now <= last:
        now = last + timedelta(microseconds=1)
    info["consent.last_tick"] = now
    return now


def _audit_details(row: LedgerRow, purpose: Purpose, d: Decision) -> dict[str, Any]:
    details: dict[str, Any] = {"purpose": purpose.key, "purpose_version": purpose.version,
               "status": row.status, "event_id": row.id,
               "collection_method": d.collection_method,
               # R-CREC-03: the chain vouches for the event row (consent/event_chain.py)
               event_chain.EVENT_HASH: event_chain.event_hash(row._asdict())}
    if row.evidence_sha256 is not None:  # chained: names the evidence after it is purged
        details["evidence_sha256"] = row.evidence_sha256
    return details


def _changed(row: LedgerRow, purpose: Purpose) -> DomainEvent:
    """The ``consent.changed`` domain event (a webhook to downstream systems)."""
    return DomainEvent(
        "consent.changed",
        {"customer_id": row.customer_id, "purpose": purpose.key,
         "purpose_version": purpose.version, "status": row.status, "event_id": row.id,
         "receipt_id": row.receipt_id, "recorded_at": rfc3339(row.recorded_at)},
        customer_id=row.customer_id, purpose=purpose.key)
