"""Data subject requests: the one service the API, the portal, the console and the CLI
call, from intake and identity verification to the DPO's actions and the systems' reports.

Domain functions take a session and never commit. Every change is in the request's
history and the audit log; the subject is told what they must be told. What each type
of request does lives beside it: dsar/effects.py (rectification, restriction, objection),
dsar/erasure.py, dsar/fan_out.py (downstream systems); access and portability end in
the ``Exporter``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

import audit
from audit.clock import rfc3339, utcnow
from consent.ledger import Ledger
from dsar import effects, erasure, fan_out, intake, reading, verification
from dsar.deadlines import WorkingDays, due_at, reminder_times
from dsar.errors import InvalidRequest, RequestNotFound
from dsar.lifecycle import add_history, move, snapshot
from dsar.models import DataSubjectRequest, RequestSystem, details_label, system_data_label
from dsar.ports import Downstream, Exporter, Notifier, Receipt, SubjectDirectory
from dsar.workflow import (
    Action,
    RejectionGround,
    RequestStatus,
    RequestType,
    TransitionRefused,
    extension,
)

UNIDENTIFIED_WAIT = intake.UNIDENTIFIED_WAIT
UNIDENTIFIED_REASON = ("No customer is known under the email address given, and no other "
                       "details (another address, a phone number or an order number) "
                       "arrived in time (Art. 11(2) GDPR).")
_JOB = audit.Actor("job", "requests")


@dataclass
class Requests:
    """Data subject requests, wired to the vault, the mail, the downstream systems, the
    consent ledger and the exporter through dsar/ports.py; ``working_days`` says which
    days deadlines may fall on (configuration)."""

    directory: SubjectDirectory
    notifier: Notifier
    downstream: Downstream
    ledger: Ledger
    exporter: Exporter
    working_days: WorkingDays

    # -- intake ----------------------------------------------------------------------
    def submit(self, session: Session, *, type: str, actor: audit.Actor,
               email: str | None = None, customer_id: str | None = None,
               details: Mapping[str, Any] | None = None, channel: str = "api",
               received_at: datetime | None = None, verified: bool = False,
               verification_method: str | None = None,
               language: str | None = None) -> DataSubjectRequest:
        """Accept a request. Unknown emails are accepted the same way (no enumeration).

        Every request is acknowledged with its id, type, receipt and due dates (R-DSAR-02),
        in the subject's language (their profile's, else ``language``, the one they asked
        in). Unverified requests send it with a single-use verification link; an address
        no customer has is told so instead, and the request closes unanswered (R-DSAR-05).
        """
        now = utcnow()
        checked = intake.check(session, type=type, details=dict(details or {}),
                               channel=channel, received_at=received_at, now=now)
        if customer_id is None and email is not None:
            customer_id = self.directory.find_by_email(session, email)
        elif customer_id is not None and not self.directory.is_active(session, customer_id):
            raise RequestNotFound("no active customer with this id")
        received = received_at or now
        req = DataSubjectRequest(**intake.new_request(
            checked, customer_id=customer_id, channel=channel, received=received, now=now,
            working_days=self.working_days))
        if checked.sealed:
            req.details_ct = self.directory.seal(session, customer_id, details_label(req.id),
                                                 json.dumps(checked.sealed).encode())
        session.add(req)
        session.flush()
        add_history(session, req, None, intake.RECEIVED, actor,
                    note=intake.received_note(channel))
        self._remind(session, req)
        audit.record(session, actor=actor, action="request.received", customer_id=customer_id,
                     details=intake.received_details({"id": req.id, "type": req.type,
                                                      "channel": channel}))
        if checked.kind is RequestType.OBJECTION and customer_id is not None:
            effects.object_at_once_to_direct_marketing(session, req, checked.plain, actor,
                                                       self.directory)
        receipt = Receipt(req.id, req.type, received, req.due_at, language)
        if verified:
            if customer_id is not None:
                self._acknowledge(session, receipt, customer_id)
            self.verify(session, req.id, method=verification_method or "authenticated",
                        actor=actor)
        elif customer_id is None and email is not None:
            # Only the mailbox's owner learns that nobody is known under it (R-DSAR-05):
            # the caller's answer is the same as for a customer.
            closes_at = intake.closes_unidentified(now, req.due_at)
            self.notifier.no_account(session, receipt=receipt, address=email,
                                     closes_at=closes_at)
            self.notifier.schedule_close_unidentified(session, request_id=req.id, at=closes_at)
        else:
            token = verification.issue_token(session, req.id, now)
            self.notifier.verification_link(session, receipt=receipt, customer_id=customer_id,
                                            token=token)
        return req

    def _acknowledge(self, session: Session, receipt: Receipt, customer_id: str) -> None:
        if receipt.type == RequestType.ERASURE:
            # Carried out in this transaction: the address must travel with the mail,
            # sealed in its job, for the record it would be read from is shredded.
            address, locale = self.directory.contact(session, customer_id)
            if address:
                self.notifier.acknowledge(session, receipt=receipt, customer_id=customer_id,
                                          address=address, locale=locale)
            return
        self.notifier.acknowledge(session, receipt=receipt, customer_id=customer_id)

    def _remind(self, session: Session, req: DataSubjectRequest) -> None:
        self.notifier.schedule_reminders(
            session, request_id=req.id, due_at=req.due_at,
            times=reminder_times(req.due_at, working_days=self.working_days))

    def submit_signed_in(self, session: Session, *, customer_id: str, type: str,
                         details: Mapping[str, Any] | None = None,
                         language: str | None = None) -> DataSubjectRequest:
        """A customer signed in to the portal asks: their session proves who they are, so
        the request is verified at once (no emailed link), on their own record only.
        ``language``: the portal page's."""
        return self.submit(session, type=type, actor=audit.Actor("customer", customer_id),
                           customer_id=customer_id, details=details, channel="portal",
                           verified=True, verification_method="portal_session",
                           language=language)

    # -- verification -------------------------------------------------------------------
    def verify_with_token(self, session: Session, request_id: str, token: str) -> DataSubjectRequest:
        """The subject followed the emailed link: the request is verified."""
        verification.use_token(session, request_id, token)
        req = self.get(session, request_id)
        actor = audit.Actor("customer", req.customer_id) if req.customer_id \
            else audit.Actor("customer", None)
        return self.verify(session, request_id, method="email_link", actor=actor)

    def verify(self, session: Session, request_id: str, *, method: str,
               actor: audit.Actor) -> DataSubjectRequest:
        """Identity is proven: carry out what the request asks, as far as the hub can at
        once. Callers commit."""
        req = self.get(session, request_id, for_update=True)
        move(session, req, Action.VERIFY, actor, event="verified", note=method)
        req.verified_at = utcnow()
        req.verification_method = method
        req.contact_ct = None  # the address was needed only to verify
        if req.customer_id is None:
            # Nobody could be identified: the request stays open for the DPO (Art. 11(2)).
            return req
        fan_out.tell_systems(session, req, req.customer_id, self.directory, self.downstream)
        self._carry_out(session, req, req.customer_id, actor)
        return req

    def _carry_out(self, session: Session, req: DataSubjectRequest, customer_id: str,
                   actor: audit.Actor) -> None:
        """Start processing a verified request; complete it unless systems still have a
        part to report."""
        kind = RequestType(req.type)
        if kind is RequestType.ERASURE:
            move(session, req, Action.START, actor, event="processing")
            if not erasure.erase_customer(session, req, customer_id, actor,
                                          directory=self.directory, ledger=self.ledger):
                self._complete(session, req, actor)
        elif kind in (RequestType.ACCESS, RequestType.PORTABILITY):
            # Every system is asked for what it holds; the export is built when all
            # have answered.
            move(session, req, Action.START, actor, event="processing")
            if not fan_out.systems_with_part(session, req):
                self._complete(session, req, actor)
        else:
            effects.apply(session, req, customer_id, self.directory, actor)
            move(session, req, Action.START, actor, event="processing")
            req.outcome = json.dumps({"done": kind.value})
            self._complete(session, req, actor)

    # -- downstream systems' reports ------------------------------------------------------
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
                                               system_data_label(req.id, system_id),
                                               json.dumps(dict(data)).encode())
        add_history(session, req, req.status, "system_reported", actor,
                    note=f"{part.system}: {status}")
        audit.record(session, actor=actor, action="request.system_reported",
                     customer_id=req.customer_id,
                     details={"request_id": req.id, "system": part.system, "status": status})
        parts = session.scalars(select(RequestSystem.status)
                                .where(RequestSystem.request_id == req.id)).all()
        if req.status == RequestStatus.PROCESSING and all(s == "done" for s in parts):
            self._complete(session, req, actor)
        elif req.status == RequestStatus.PROCESSING and status == "failed":
            fan_out.ask_again(session, req, part, actor, directory=self.directory,
                              downstream=self.downstream)
        return req

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
        move(session, req, Action.COMPLETE, actor, event="completed", note=note)
        req.completed_at = utcnow()
        erasure.forget_identifiers(req)
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
        total = extension(snapshot(req), months, utcnow(), working_days=self.working_days)
        req.extension_months = total
        req.extension_reason = reason.strip()
        req.due_at = due_at(req.received_at, total, working_days=self.working_days)
        req.updated_at = utcnow()
        add_history(session, req, req.status, "extended", actor, note=f"+{months} months")
        self._remind(session, req)
        audit.record(session, actor=actor, action="request.extended", customer_id=req.customer_id,
                     details={"request_id": req.id, "months": months, "total": total})
        self.notifier.tell_subject(session, request_id=req.id, customer_id=req.customer_id,
                                   template="request_extended",
                                   data={"due_at": rfc3339(req.due_at) or "", "reason": reason})
        return req

    def reject(self, session: Session, request_id: str, *, reason: str,
               actor: audit.Actor, ground: str = RejectionGround.OTHER) -> DataSubjectRequest:
        """Art. 12(4): refuse on a ground (RejectionGround) with a justification; the
        subject is told both, with their right to complain and to a judicial remedy.
        No fee is ever asked instead (Art. 12(5): the hub charges none)."""
        errors: dict[str, list[str]] = {}
        if ground not in {str(g) for g in RejectionGround}:
            errors["ground"] = ["one of " + ", ".join(RejectionGround)]
        if not reason.strip():
            errors["reason"] = ["tell the subject why the request is refused"]
        if errors:
            raise InvalidRequest(errors)
        req = self.get(session, request_id, for_update=True)
        move(session, req, Action.REJECT, actor, event="rejected", reason=reason,
             details={"ground": ground})
        req.rejection_ground = str(ground)
        req.rejection_reason = reason.strip()
        req.rejected_at = req.updated_at
        self.notifier.tell_subject(session, request_id=req.id, customer_id=req.customer_id,
                                   template="request_rejected",
                                   data={"ground": str(ground), "reason": reason.strip()})
        return req

    def close_unidentified(self, session: Session, request_id: str) -> DataSubjectRequest | None:
        """R-DSAR-05: a request nobody could be identified for, still waiting for other
        details, is rejected (``identity_not_found``); None when it moved on meanwhile
        (verified, identified, or ended by staff)."""
        req = session.scalars(select(DataSubjectRequest).where(
            DataSubjectRequest.id == request_id).with_for_update()).first()
        if (req is None or req.customer_id is not None
                or req.status != RequestStatus.PENDING_VERIFICATION):
            return None
        return self.reject(session, request_id, ground=RejectionGround.IDENTITY_NOT_FOUND,
                           reason=UNIDENTIFIED_REASON, actor=_JOB)

    def cancel(self, session: Session, request_id: str, *, actor: audit.Actor,
               note: str | None = None) -> DataSubjectRequest:
        """The subject withdrew the request, or it is void: it ends without being carried out."""
        req = self.get(session, request_id, for_update=True)
        move(session, req, Action.CANCEL, actor, event="cancelled", note=note)
        erasure.forget_identifiers(req)
        return req

    # -- reading ---------------------------------------------------------------------------
    def get(self, session: Session, request_id: str, *, for_update: bool = False) -> DataSubjectRequest:
        """The request, or RequestNotFound; ``for_update`` locks it for the transaction."""
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
        """Requests by due date (soonest first), filtered (dsar.reading.query)."""
        return reading.query(status=status, type=type, overdue=overdue, now=now, after=after)

    @staticmethod
    def public(session: Session, req: DataSubjectRequest, now: datetime | None = None) -> dict[str, Any]:
        """The API view of one request."""
        return reading.public_many(session, [req], now)[0]

    @staticmethod
    def public_many(session: Session, reqs: Sequence[DataSubjectRequest],
                    now: datetime | None = None) -> list[dict[str, Any]]:
        """The API view of requests (dsar.reading.public_many)."""
        return reading.public_many(session, reqs, now)

