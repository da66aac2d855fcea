"""The vault and the outbox as data subject requests need them (dsar/ports.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.orm import Session

import audit
from audit.clock import utcnow
from consent.domain_events import JSONValue
from dsar.ports import Receipt
from dsar.requests import Requests
from privacy_hub.hub import Hub
from privacy_hub.jobs import outbox
from privacy_hub.jobs.backoff import backoff_delay
from privacy_hub.jobs.retention import REQUEST_REMINDER, REQUEST_UNIDENTIFIED, RETENTION_PURGE
from privacy_hub.models import System
from privacy_hub.rights.exports import Exports
from privacy_hub.vault import crypto
from privacy_hub.vault.blind_index import NormalisationError, normalise_email
from privacy_hub.vault.errors import CustomerNotFound


class VaultDirectory:
    """dsar's SubjectDirectory port: the subject's data in the vault (find, rectify, retain,
    erase) and request details sealed under their data key."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def find_by_email(self, session: Session, email: str) -> str | None:
        try:
            normalised = normalise_email(email)
        except NormalisationError:
            return None
        row = self.hub.vault.find_one(session, "email", normalised)
        return row.id if row is not None and row.status != "erased" else None

    def is_active(self, session: Session, customer_id: str) -> bool:
        try:
            return self.hub.vault.get_row(session, customer_id).status != "erased"
        except CustomerNotFound:
            return False

    def rectify(self, session: Session, customer_id: str, changes: Mapping[str, Any], *,
                actor: audit.Actor) -> list[str]:
        self.hub.vault.rectify(session, customer_id, changes, actor=actor)
        return sorted(changes)

    def identifiers(self, session: Session, customer_id: str) -> dict[str, str]:
        row = self.hub.vault.get_row(session, customer_id)
        profile = self.hub.vault.profile(session, row, only=["email", "phone", "external_id"])
        return {k: str(profile[k]) for k in ("email", "phone", "external_id") if profile.get(k)}

    def contact(self, session: Session, customer_id: str) -> tuple[str | None, str | None]:
        row = self.hub.vault.get_row(session, customer_id)
        profile = self.hub.vault.profile(session, row, only=["email", "locale"])
        email, locale = profile.get("email"), profile.get("locale")
        return (str(email) if email else None, locale if isinstance(locale, str) else None)

    def retain(self, session: Session, customer_id: str, *, purpose: str, legal_basis: str,
               fields: Sequence[str], hold_until: datetime, actor: audit.Actor) -> list[str]:
        kept = self.hub.vault.retain(session, customer_id, purpose=purpose,
                                     legal_basis=legal_basis, fields=fields,
                                     hold_until=hold_until, actor=actor)
        if kept:
            outbox.enqueue(session, RETENTION_PURGE, {"customer_id": customer_id},
                           run_at=hold_until, customer_id=customer_id)
        return kept

    def erase(self, session: Session, customer_id: str, *, actor: audit.Actor,
              request_id: str) -> None:
        self.hub.vault.crypto_shred(session, customer_id, actor=actor, request_id=request_id)

    def suppress(self, session: Session, customer_id: str, *, reason: str,
                 actor: audit.Actor) -> None:
        if self.hub.vault.suppression is not None:
            self.hub.vault.suppression.add(session, self.identifiers(session, customer_id),
                                           reason=reason, actor=actor)

    def _app_aead(self, session: Session) -> AESGCM:
        return AESGCM(self.hub.keyring.hub_key(session, "app_secrets"))

    def seal(self, session: Session, customer_id: str | None, label: str, data: bytes) -> bytes:
        if customer_id is not None:
            key = self.hub.keyring.data_key(session, customer_id)
            return key.seal("requests", "details_ct", label, data)
        return crypto.wrap(self._app_aead(session), data, label.encode())

    def open(self, session: Session, customer_id: str | None, label: str, blob: bytes) -> bytes:
        if customer_id is not None:
            return self.hub.keyring.data_key(session, customer_id).open(
                "requests", "details_ct", label, blob)
        return crypto.unwrap(self._app_aead(session), blob, label.encode())


class RegisteredSystems:
    """dsar's Downstream port: the registered systems told about a request by webhook."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def systems(self, session: Session) -> list[tuple[str, str]]:
        rows = session.execute(select(System.id, System.name).where(
            System.webhook_url.is_not(None), System.disabled_at.is_(None)).order_by(System.name))
        return [(r.id, r.name) for r in rows]

    def resend(self, session: Session, *, system_id: str, event_type: str,
               data: Mapping[str, Any], customer_id: str | None, attempt: int) -> None:
        # The webhook backoff (a minute, doubling, at most six hours by default), without
        # jitter: a system that failed its part gets it again, later each time.
        delay = 0.0 if attempt < 1 else backoff_delay(
            attempt, base=self.hub.settings.webhook_backoff_base,
            cap=self.hub.settings.webhook_backoff_max, jitter=1.0)
        outbox.enqueue_webhook(session, system_id=system_id, event_type=event_type, data=data,
                               customer_id=customer_id,
                               run_at=utcnow() + timedelta(seconds=delay))


class OutboxNotifier:
    """dsar's Notifier port: mails to the subject and deadline reminders, via the outbox."""

    def verification_link(self, session: Session, *, receipt: Receipt, customer_id: str | None,
                          token: str) -> None:
        if customer_id is None:
            return  # nobody identified: no_account told the address's owner
        outbox.enqueue_job(session, verification_mail(receipt, customer_id, token))

    def acknowledge(self, session: Session, *, receipt: Receipt, customer_id: str,
                    address: str | None = None, locale: str | None = None) -> None:
        if address is None:
            outbox.enqueue_mail(session, template="request_received", customer_id=customer_id,
                                data=_acknowledgement(receipt))
            return
        try:
            normalised = normalise_email(address)
        except NormalisationError:
            return  # not an address: nobody to tell
        # The profile's language first, as a customer's own mail would have it.
        outbox.enqueue_mail(session, template="request_received", to_staff=normalised,
                            data=_acknowledgement(receipt, locale))

    def no_account(self, session: Session, *, receipt: Receipt, address: str,
                   closes_at: datetime) -> None:
        job = no_account_mail(receipt, address, closes_at)
        if job is not None:
            outbox.enqueue_job(session, job)

    def schedule_close_unidentified(self, session: Session, *, request_id: str,
                                    at: datetime) -> None:
        outbox.enqueue_job(session, close_unidentified_job(request_id, at))

    def schedule_reminders(self, session: Session, *, request_id: str, due_at: datetime,
                           times: Sequence[datetime]) -> None:
        for job in reminder_jobs(request_id, due_at, times):
            outbox.enqueue_job(session, job)

    def tell_subject(self, session: Session, *, request_id: str, customer_id: str | None,
                     template: str, data: Mapping[str, str]) -> None:
        if customer_id is None:
            return  # nobody identified, no address kept: nothing to send to
        outbox.enqueue_mail(session, template=template, customer_id=customer_id,
                            data={"request_id": request_id, **data})


# The jobs of a new request, the same through a session (OutboxNotifier) and in a
# group-committed intake (privacy_hub/rights/intake.py).
def verification_mail(receipt: Receipt, customer_id: str, token: str) -> outbox.Job:
    """The acknowledgement with the single-use verification link (R-DSAR-02)."""
    return outbox.mail_job(template="request_verification", customer_id=customer_id,
                           data=_acknowledgement(receipt), secrets={"token": token})


def no_account_mail(receipt: Receipt, address: str, closes_at: datetime) -> outbox.Job | None:
    """R-DSAR-05: the address's owner is told nobody is known under it (None: not an
    address, nobody to tell)."""
    try:
        normalised = normalise_email(address)
    except NormalisationError:
        return None
    return outbox.mail_job(template="request_no_account", to_staff=normalised,
                           data={**_acknowledgement(receipt),
                                 "closes_at": closes_at.date().isoformat()})


def close_unidentified_job(request_id: str, at: datetime) -> outbox.Job:
    """R-DSAR-05: close the request at ``at`` if nobody was identified by then."""
    return outbox.Job(REQUEST_UNIDENTIFIED, {"request_id": request_id}, at)


def reminder_jobs(request_id: str, due_at: datetime,
                  times: Sequence[datetime]) -> list[outbox.Job]:
    """R-DEAD-03: one reminder a week before the deadline, one when it has passed."""
    return [outbox.Job(REQUEST_REMINDER, {
        "request_id": request_id, "due_at": due_at.isoformat(),
        "reminder": "overdue" if when >= due_at else "due_soon"}, when) for when in times]


def _acknowledgement(receipt: Receipt, locale: str | None = None) -> dict[str, JSONValue]:
    """A mail's data acknowledging a request (R-DSAR-02): its language is the customer's
    profile's, else ``locale``, else the one the request was made in."""
    return {"request_id": receipt.request_id, "request_type": receipt.type,
            "received_at": receipt.received_at.date().isoformat(),
            "due_at": receipt.due_at.date().isoformat(),
            "fallback_locale": locale or receipt.language}


def requests_service(hub: Hub) -> Requests:
    """Data subject requests wired to this hub: the API, the portal and the console use
    this one composition."""
    return Requests(VaultDirectory(hub), OutboxNotifier(), RegisteredSystems(hub), hub.ledger,
                    Exports(hub), hub.working_days)
