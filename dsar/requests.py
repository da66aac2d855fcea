"""Data subject requests: intake, identity verification, DPO actions, and the effects
of rectification (Art. 16), restriction (Art. 18) and objection (Art. 21).

Domain functions take a session and never commit. Every change is in the request's
history and the audit log; the subject is told what they must be told.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

import audit
from audit.clock import rfc3339, utcnow
from audit.ids import new_id
from consent import flags
from consent import purposes as registry
from consent.domain_events import DomainEvent, emit
from consent.errors import UnknownPurpose
from consent.ledger import Decision, Ledger
from consent.models import ConsentState
from dsar.deadlines import due_at
from dsar.errors import InvalidRequest, RequestNotFound, VerificationFailed
from dsar.models import DataSubjectRequest, RequestHistory, RequestSystem, VerificationToken
from dsar.ports import Downstream, Exporter, Notifier, SubjectDirectory
from dsar.workflow import (
    FINAL,
    Action,
    RequestStatus,
    RequestType,
    Snapshot,
    TransitionRefused,
    extension,
    next_status,
)

TOKEN_TTL = timedelta(days=7)
CHANNELS = ("api", "portal", "email", "letter", "phone", "console")


def _identifiers_label(request_id: str) -> str:
    return f"request.{request_id}.identifiers"


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass
class Requests:
    directory: SubjectDirectory
    notifier: Notifier
    downstream: Downstream
    ledger: Ledger
    exporter: Exporter

    # -- intake ----------------------------------------------------------------------
    def submit(self, session: Session, *, type: str, actor: audit.Actor,
               email: str | None = None, customer_id: str | None = None,
               details: Mapping[str, Any] | None = None, channel: str = "api",
               received_at: datetime | None = None, verified: bool = False,
               verification_method: str | None = None) -> DataSubjectRequest:
        """Accept a request. Unknown emails are accepted the same way (no enumeration).

        Unverified requests send a single-use verification link to the subject.
        """
        now = utcnow()
        kind = self._type(type)
        details = dict(details or {})
        plain, sealed = self._details(session, kind, details)
        if received_at is not None and received_at > now + timedelta(minutes=5):
            raise InvalidRequest({"received_at": ["lies in the future"]})
        if channel not in CHANNELS:
            raise InvalidRequest({"channel": ["one of " + ", ".join(CHANNELS)]})
        if customer_id is None and email is not None:
            customer_id = self.directory.find_by_email(session, email)
        elif customer_id is not None and not self.directory.is_active(session, customer_id):
            raise RequestNotFound("no active customer with this id")
        received = received_at or now
        req = DataSubjectRequest(
            id=new_id(), type=str(kind), status=str(RequestStatus.PENDING_VERIFICATION),
            customer_id=customer_id, channel=channel, received_at=received,
            due_at=due_at(received), extension_months=0, details=json.dumps(plain),
            created_at=now, updated_at=now)
        if sealed:
            req.details_ct = self.directory.seal(session, customer_id, f"request.{req.id}",
                                                 json.dumps(sealed).encode())
        session.add(req)
        session.flush()
        self._history(session, req, None, "received", actor,
                      note=f"channel {channel}")
        self.notifier.schedule_reminders(session, request_id=req.id, due_at=req.due_at)
        audit.record(session, actor=actor, action="request.received", customer_id=customer_id,
                     details={"request_id": req.id, "type": str(kind), "channel": channel})
        if kind is RequestType.OBJECTION and customer_id is not None:
            self._object_at_once_to_direct_marketing(session, req, plain, actor)
        if verified:
            self.verify(session, req.id, method=verification_method or "authenticated",
                        actor=actor)
        else:
            token = secrets.token_urlsafe(32)
            session.add(VerificationToken(token_hash=_hash(token), request_id=req.id,
                                          expires_at=now + TOKEN_TTL))
            self.notifier.verification_link(session, request_id=req.id, customer_id=customer_id,
                                            address=None if customer_id else email, token=token)
        return req

    def submit_signed_in(self, session: Session, *, customer_id: str, type: str,
                         details: Mapping[str, Any] | None = None) -> DataSubjectRequest:
        """A customer signed in to the portal asks: their session proves who they are, so
        the request is verified at once (no emailed link), on their own record only."""
        return self.submit(session, type=type, actor=audit.Actor("customer", customer_id),
                           customer_id=customer_id, details=details, channel="portal",
                           verified=True, verification_method="portal_session")

    @staticmethod
    def _type(value: str) -> RequestType:
        try:
            return RequestType(value)
        except ValueError:
            raise InvalidRequest({"type": ["one of " + ", ".join(RequestType)]}) from None

    def _details(self, session: Session, kind: RequestType,
                 details: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Split details into what may be stored plainly and what must be sealed."""
        allowed = {RequestType.RECTIFICATION: {"changes"}, RequestType.RESTRICTION: {"ground"},
                   RequestType.OBJECTION: {"purposes"}}.get(kind, set())
        unknown = sorted(set(details) - allowed)
        if unknown:
            raise InvalidRequest({f"details.{k}": [f"not a detail of a {kind} request"]
                                  for k in unknown})
        if kind is RequestType.RECTIFICATION:
            changes = details.get("changes")
            if not isinstance(changes, Mapping) or not changes:
                raise InvalidRequest({"details.changes": ["name the fields to correct"]})
            return {"fields": sorted(changes)}, {"changes": dict(changes)}
        if kind is RequestType.RESTRICTION:
            ground = details.get("ground")
            if ground not in flags.RESTRICTION_GROUNDS:
                raise InvalidRequest({"details.ground": [
                    "required, an Art. 18(1) ground: " + ", ".join(flags.RESTRICTION_GROUNDS)]})
            return {"ground": ground}, {}
        if kind is RequestType.OBJECTION:
            purposes = details.get("purposes")
            if purposes is not None:
                bad = []
                for key in purposes:
                    try:
                        registry.get(session, key)
                    except UnknownPurpose:
                        bad.append(key)
                if bad:
                    raise InvalidRequest({"details.purposes": [f"no such purpose: {k}"
                                                               for k in bad]})
                return {"purposes": list(purposes)}, {}
            return {"purposes": None}, {}
        return {}, {}

    def _object_at_once_to_direct_marketing(self, session: Session, req: DataSubjectRequest,
                                            plain: Mapping[str, Any], actor: audit.Actor) -> None:
        # Art. 21(3): an objection to direct marketing stops it at once, before any check.
        if req.customer_id is None:
            return
        named: Sequence[str] | None = plain.get("purposes")
        if named is None:
            flags.object_to(session, req.customer_id, None, actor=actor, request_id=req.id)
            return
        marketing = [k for k in named if registry.get(session, k).direct_marketing]
        if marketing:
            flags.object_to(session, req.customer_id, marketing, actor=actor, request_id=req.id)

    # -- verification -------------------------------------------------------------------
    def verify_with_token(self, session: Session, request_id: str, token: str) -> DataSubjectRequest:
        """The subject followed the emailed link: the request is verified."""
        row = session.get(VerificationToken, _hash(token), with_for_update=True)
        now = utcnow()
        if (row is None or not hmac.compare_digest(row.request_id, request_id)
                or row.used_at is not None or row.expires_at <= now):
            raise VerificationFailed("this verification link is unknown, used or expired")
        row.used_at = now
        req = self.get(session, request_id)
        actor = audit.Actor("customer", req.customer_id) if req.customer_id \
            else audit.Actor("customer", None)
        return self.verify(session, request_id, method="email_link", actor=actor)

    def verify(self, session: Session, request_id: str, *, method: str,
               actor: audit.Actor) -> DataSubjectRequest:
        """Identity is proven: apply what takes effect on verification. Callers commit."""
        req = self.get(session, request_id, for_update=True)
        self._move(session, req, Action.VERIFY, actor, event="verified", note=method)
        req.verified_at = utcnow()
        req.verification_method = method
        req.contact_ct = None  # the address was needed only to verify
        if req.customer_id is None:
            # Nobody could be identified: the request stays open for the DPO (Art. 11(2)).
            return req
        # Systems learn of the request with the identifiers they match on (before an
        # erasure makes them unreadable).
        emit(session, DomainEvent("request.created", {
            "request_id": req.id, "type": req.type, "customer_id": req.customer_id,
            "due_at": rfc3339(req.due_at),
            "identifiers": dict(self.directory.identifiers(session, req.customer_id))},
            customer_id=req.customer_id))
        # Every system is told (Art. 19) and its acknowledgement tracked.
        for system_id, name in self.downstream.systems(session):
            session.add(RequestSystem(request_id=req.id, system_id=system_id, system=name,
                                      status="pending", updated_at=utcnow()))
        session.flush()
        self._apply_effects(session, req, actor)
        return req

    def _apply_effects(self, session: Session, req: DataSubjectRequest, actor: audit.Actor) -> None:
        if req.customer_id is None:
            return
        plain = json.loads(req.details)
        kind = RequestType(req.type)
        if kind is RequestType.RESTRICTION:
            flags.restrict(session, req.customer_id, ground=plain["ground"], actor=actor,
                           request_id=req.id)
        elif kind is RequestType.OBJECTION:
            flags.object_to(session, req.customer_id, plain.get("purposes"), actor=actor,
                            request_id=req.id)
        elif kind is RequestType.RECTIFICATION:
            sealed = json.loads(self.directory.open(session, req.customer_id,
                                                    f"request.{req.id}", req.details_ct or b""))
            self.directory.rectify(session, req.customer_id, sealed["changes"], actor=actor)
            emit(session, DomainEvent("customer.rectified", {
                "customer_id": req.customer_id, "fields": plain["fields"],
                "request_id": req.id}, customer_id=req.customer_id))
        elif kind is RequestType.ERASURE:
            self._erase(session, req, actor)
            return
        else:
            self._start_export(session, req, actor)
            return
        self._move(session, req, Action.START, actor, event="processing")
        req.outcome = json.dumps({"done": kind.value})
        self._complete(session, req, actor)

    # -- erasure (Art. 17) ------------------------------------------------------------------
    def _erase(self, session: Session, req: DataSubjectRequest, actor: audit.Actor) -> None:
        """The hub's part, in one transaction: withdraw every consent, deny everything in the
        gate, keep what a legal duty requires under its own key, crypto-shred the rest, and
        tell every system (with the identifiers they match on) to erase their copies."""
        cid = req.customer_id
        if cid is None:
            return
        self._move(session, req, Action.START, actor, event="processing")
        identifiers = self.directory.identifiers(session, cid)
        in_force = session.scalars(select(ConsentState).where(
            ConsentState.customer_id == cid,
            ConsentState.status.in_(("granted", "pending_confirmation")))).all()
        for state in in_force:
            self.ledger.record(session, cid, Decision(
                purpose=state.purpose, granted=False, source="erasure_request",
                collection_method="erasure_request"), actor=actor)
        flags.mark_erased(session, cid, actor=actor, request_id=req.id)
        now = utcnow()
        kept = []
        for purpose in registry.all_purposes(session):
            if purpose.legal_basis != "legal_obligation" or not purpose.fields:
                continue
            until = now + timedelta(days=purpose.retention_days)
            fields = self.directory.retain(session, cid, purpose=purpose.key,
                                           legal_basis=str(purpose.legal_basis),
                                           fields=purpose.fields, hold_until=until, actor=actor)
            if fields:
                kept.append({"purpose": purpose.key, "title": purpose.title,
                             "legal_basis": str(purpose.legal_basis), "fields": fields,
                             "data_categories": list(purpose.data_categories),
                             "until": rfc3339(until),
                             "why": "kept under a legal obligation (Art. 17(3)(b) GDPR): "
                                    + purpose.description})
        self.directory.erase(session, cid, actor=actor, request_id=req.id)
        systems = self._parts(session, req)
        if systems:
            # The one readable copy of the identifiers left: sealed under the hub's key,
            # so a system that reports its part failed can be told again (Art. 17(2), 19).
            # It goes when the request ends (_end).
            req.details_ct = self.directory.seal(session, None, _identifiers_label(req.id),
                                                 json.dumps(dict(identifiers)).encode())
        emit(session, DomainEvent("customer.erased", {
            "customer_id": cid, "request_id": req.id, "identifiers": dict(identifiers)},
            customer_id=cid))
        req.outcome = json.dumps({"erased": True, "withdrawn_consents": len(in_force),
                                  "kept": kept})
        if not systems:
            self._complete(session, req, actor)

    # -- access and portability (Art. 15, 20) -------------------------------------------------
    def _start_export(self, session: Session, req: DataSubjectRequest, actor: audit.Actor) -> None:
        """Ask every system for what it holds; the export is built when all have answered."""
        self._move(session, req, Action.START, actor, event="processing")
        if not self._parts(session, req):
            self._complete(session, req, actor)

    @staticmethod
    def _parts(session: Session, req: DataSubjectRequest) -> list[str]:
        return list(session.scalars(select(RequestSystem.system)
                                    .where(RequestSystem.request_id == req.id)))

    def report(self, session: Session, request_id: str, *, system_id: str, status: str,
               actor: audit.Actor, data: Mapping[str, Any] | None = None) -> DataSubjectRequest:
        """A downstream system reports its part: done or failed. The request completes when
        every system is done."""
        if status not in ("done", "failed"):
            raise InvalidRequest({"status": ["done or failed"]})
        req = self.get(session, request_id, for_update=True)
        part = session.get(RequestSystem, (req.id, system_id), with_for_update=True)
        if part is None:
            raise RequestNotFound("this system has no part in this request")
        if req.status not in (RequestStatus.PROCESSING, RequestStatus.COMPLETED):
            raise TransitionRefused(f"a {req.status} request takes no reports")
        part.status = status
        part.updated_at = utcnow()
        if data and req.type in (RequestType.ACCESS, RequestType.PORTABILITY) and req.customer_id:
            part.data_ct = self.directory.seal(session, req.customer_id,
                                               f"request_system.{req.id}.{system_id}",
                                               json.dumps(dict(data)).encode())
        self._history(session, req, req.status, "system_reported", actor,
                      note=f"{part.system}: {status}")
        audit.record(session, actor=actor, action="request.system_reported",
                     customer_id=req.customer_id,
                     details={"request_id": req.id, "system": part.system, "status": status})
        parts = session.scalars(select(RequestSystem.status)
                                .where(RequestSystem.request_id == req.id)).all()
        if req.status == RequestStatus.PROCESSING and all(s == "done" for s in parts):
            self._complete(session, req, actor)
        elif req.status == RequestStatus.PROCESSING and status == "failed":
            self._ask_again(session, req, part, actor)
        return req

    def _ask_again(self, session: Session, req: DataSubjectRequest, part: RequestSystem,
                   actor: audit.Actor) -> None:
        """A system failed its part: send it the request again, later with each failure,
        until it reports done or a DPO closes the request."""
        failures = session.scalar(select(func.count()).select_from(RequestHistory).where(
            RequestHistory.request_id == req.id, RequestHistory.event == "system_reported",
            RequestHistory.note == f"{part.system}: failed")) or 1
        cid = req.customer_id
        if cid is None:
            return
        if req.type == RequestType.ERASURE:
            if req.details_ct is None:
                return
            identifiers = json.loads(self.directory.open(session, None,
                                                         _identifiers_label(req.id),
                                                         req.details_ct))
            event_type = "customer.erased"
            data: dict[str, Any] = {"customer_id": cid, "request_id": req.id,
                                    "identifiers": identifiers}
        else:
            event_type = "request.created"
            data = {"request_id": req.id, "type": req.type, "customer_id": cid,
                    "due_at": rfc3339(req.due_at),
                    "identifiers": dict(self.directory.identifiers(session, cid))}
        self.downstream.resend(session, system_id=part.system_id, event_type=event_type,
                               data=data, customer_id=cid, attempt=failures)
        audit.record(session, actor=actor, action="request.resent",
                     customer_id=cid, details={"request_id": req.id, "system": part.system,
                                               "event": event_type, "attempt": failures})

    def close(self, session: Session, request_id: str, *, note: str,
              actor: audit.Actor) -> DataSubjectRequest:
        """A DPO completes a request although some systems have not reported done."""
        if not note.strip():
            raise InvalidRequest({"note": ["say why the request is closed this way"]})
        req = self.get(session, request_id, for_update=True)
        self._complete(session, req, actor, note=note.strip())
        return req

    def _complete(self, session: Session, req: DataSubjectRequest, actor: audit.Actor,
                  note: str | None = None) -> None:
        self._move(session, req, Action.COMPLETE, actor, event="completed", note=note)
        req.completed_at = utcnow()
        self._end(req)
        if req.type in (RequestType.ACCESS, RequestType.PORTABILITY) and req.customer_id:
            self.exporter.build(session, request_id=req.id, customer_id=req.customer_id,
                                portability=req.type == RequestType.PORTABILITY)

    # -- DPO actions ----------------------------------------------------------------------
    def extend(self, session: Session, request_id: str, *, months: int, reason: str,
               actor: audit.Actor) -> DataSubjectRequest:
        """Art. 12(3): at most two months more, decided before the first deadline, with a
        reason the subject is told."""
        if not reason.strip():
            raise InvalidRequest({"reason": ["tell the subject why the request takes longer"]})
        req = self.get(session, request_id, for_update=True)
        total = extension(self._snapshot(req), months, utcnow())
        req.extension_months = total
        req.extension_reason = reason.strip()
        req.due_at = due_at(req.received_at, total)
        req.updated_at = utcnow()
        self._history(session, req, req.status, "extended", actor, note=f"+{months} months")
        self.notifier.schedule_reminders(session, request_id=req.id, due_at=req.due_at)
        audit.record(session, actor=actor, action="request.extended", customer_id=req.customer_id,
                     details={"request_id": req.id, "months": months, "total": total})
        self.notifier.tell_subject(session, request_id=req.id, customer_id=req.customer_id,
                                   template="request_extended",
                                   data={"due_at": rfc3339(req.due_at) or "", "reason": reason})
        return req

    def reject(self, session: Session, request_id: str, *, reason: str,
               actor: audit.Actor) -> DataSubjectRequest:
        """Art. 12(4): refuse with reasons; the subject is told, with their right to complain."""
        req = self.get(session, request_id, for_update=True)
        self._move(session, req, Action.REJECT, actor, event="rejected", reason=reason)
        req.rejection_reason = reason.strip()
        self.notifier.tell_subject(session, request_id=req.id, customer_id=req.customer_id,
                                   template="request_rejected", data={"reason": reason.strip()})
        return req

    def cancel(self, session: Session, request_id: str, *, actor: audit.Actor,
               note: str | None = None) -> DataSubjectRequest:
        req = self.get(session, request_id, for_update=True)
        self._move(session, req, Action.CANCEL, actor, event="cancelled", note=note)
        self._end(req)
        return req

    @staticmethod
    def _end(req: DataSubjectRequest) -> None:
        if req.type == RequestType.ERASURE:
            req.details_ct = None  # the identifiers kept for retries (see _erase)

    # -- reading ---------------------------------------------------------------------------
    def get(self, session: Session, request_id: str, *, for_update: bool = False) -> DataSubjectRequest:
        stmt = select(DataSubjectRequest).where(DataSubjectRequest.id == request_id)
        if for_update:
            stmt = stmt.with_for_update()
        req = session.scalars(stmt).first()
        if req is None:
            raise RequestNotFound(request_id)
        return req

    @staticmethod
    def query(*, status: str | None = None, type: str | None = None, overdue: bool | None = None,
              now: datetime | None = None, after: tuple[str, str] | None = None
              ) -> Select[DataSubjectRequest]:
        """Requests by due date (soonest first), filtered."""
        stmt = select(DataSubjectRequest)
        if status:
            stmt = stmt.where(DataSubjectRequest.status == status)
        if type:
            stmt = stmt.where(DataSubjectRequest.type == type)
        if overdue is not None:
            open_ = DataSubjectRequest.status.not_in([str(s) for s in FINAL])
            late = DataSubjectRequest.due_at < (now or utcnow())
            stmt = stmt.where(open_ & late) if overdue else stmt.where(~(open_ & late))
        if after is not None:
            due, rid = after
            stmt = stmt.where((DataSubjectRequest.due_at > due)
                              | ((DataSubjectRequest.due_at == due)
                                 & (DataSubjectRequest.id > rid)))
        return stmt.order_by(DataSubjectRequest.due_at, DataSubjectRequest.id)

    @staticmethod
    def public(session: Session, req: DataSubjectRequest, now: datetime | None = None) -> dict[str, Any]:
        return Requests.public_many(session, [req], now)[0]

    @staticmethod
    def public_many(session: Session, reqs: Sequence[DataSubjectRequest],
                    now: datetime | None = None) -> list[dict[str, Any]]:
        """The API view of requests, with systems and history in two queries for all."""
        now = now or utcnow()
        ids = [r.id for r in reqs]
        systems: dict[str, list[RequestSystem]] = {i: [] for i in ids}
        history: dict[str, list[RequestHistory]] = {i: [] for i in ids}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for s in session.scalars(select(RequestSystem).where(RequestSystem.request_id.in_(chunk))
                                     .order_by(RequestSystem.system)):
                systems[s.request_id].append(s)
            for h in session.scalars(select(RequestHistory).where(RequestHistory.request_id.in_(chunk))
                                     .order_by(RequestHistory.id)):
                history[h.request_id].append(h)
        return [Requests._public(r, systems[r.id], history[r.id], now) for r in reqs]

    @staticmethod
    def _public(req: DataSubjectRequest, systems: Sequence[RequestSystem],
                history: Sequence[RequestHistory], now: datetime) -> dict[str, Any]:
        return {
            "id": req.id, "type": req.type, "status": req.status,
            "customer_id": req.customer_id, "channel": req.channel,
            "received_at": rfc3339(req.received_at), "due_at": rfc3339(req.due_at),
            "extended": req.extension_months > 0, "extension_months": req.extension_months,
            "overdue": req.status not in {str(s) for s in FINAL} and now > req.due_at,
            "verified_at": rfc3339(req.verified_at),
            "verification_method": req.verification_method,
            "details": json.loads(req.details), "outcome": json.loads(req.outcome or "null"),
            "rejection_reason": req.rejection_reason,
            "completed_at": rfc3339(req.completed_at),
            "systems": [{"system": s.system, "status": s.status,
                         "updated_at": rfc3339(s.updated_at)} for s in systems],
            "history": [{"event": h.event, "from_status": h.from_status,
                         "to_status": h.to_status, "at": rfc3339(h.at),
                         "actor": {"type": h.actor_type, "id": h.actor_id}, "note": h.note}
                        for h in history],
        }

    @staticmethod
    def count_open(session: Session) -> int:
        return int(session.scalar(select(func.count()).select_from(DataSubjectRequest).where(
            DataSubjectRequest.status.not_in([str(s) for s in FINAL]))) or 0)

    # -- internals -------------------------------------------------------------------------
    @staticmethod
    def _snapshot(req: DataSubjectRequest) -> Snapshot:
        return Snapshot(RequestStatus(req.status), req.received_at, req.extension_months)

    def _move(self, session: Session, req: DataSubjectRequest, action: Action,
              actor: audit.Actor, *, event: str, note: str | None = None,
              reason: str | None = None) -> None:
        target = next_status(self._snapshot(req), action, reason=reason)
        before = req.status
        req.status = str(target)
        req.updated_at = utcnow()
        self._history(session, req, before, event, actor, note=note or reason)
        audit.record(session, actor=actor, action=f"request.{event}", customer_id=req.customer_id,
                     details={"request_id": req.id, "type": req.type, "status": req.status})

    @staticmethod
    def _history(session: Session, req: DataSubjectRequest, before: str | None, event: str,
                 actor: audit.Actor, *, note: str | None = None) -> None:
        session.add(RequestHistory(request_id=req.id, from_status=before, to_status=req.status,
                                   event=event, at=utcnow(), actor_type=actor.kind,
                                   actor_id=actor.id, note=note))


__all__ = ["Requests", "TransitionRefused"]
