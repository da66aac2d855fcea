"""What data subject requests need from the outside, as Protocols.

dsar/ never imports the vault, the mailer or the webhooks; the application passes in
objects that satisfy these (privacy_hub/rights/adapters.py), and tests may pass fakes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

import audit


class SubjectDirectory(Protocol):
    """The customer vault, as data subject requests see it."""

    def find_by_email(self, session: Session, email: str) -> str | None:
        """The id of the active customer with this email, or None."""

    def is_active(self, session: Session, customer_id: str) -> bool:
        """True if the customer exists and is not erased."""

    def rectify(self, session: Session, customer_id: str, changes: Mapping[str, Any], *,
                actor: audit.Actor) -> list[str]:
        """Apply Art. 16 changes; return the names of the changed fields."""

    def identifiers(self, session: Session, customer_id: str) -> dict[str, str]:
        """email, phone, external_id (those set): what downstream systems match on."""

    def retain(self, session: Session, customer_id: str, *, purpose: str, legal_basis: str,
               fields: Sequence[str], hold_until: datetime, actor: audit.Actor) -> list[str]:
        """Keep these fields under a legal duty until ``hold_until``; return those kept."""

    def erase(self, session: Session, customer_id: str, *, actor: audit.Actor,
              request_id: str) -> None:
        """Crypto-shred the customer: their key, blind indexes and live data go."""

    def contact(self, session: Session, customer_id: str) -> tuple[str | None, str | None]:
        """The customer's email address and the language of their profile (either None
        when not held): for a mail that must leave after their record is gone."""

    def suppress(self, session: Session, customer_id: str, *, reason: str,
                 actor: audit.Actor) -> None:
        """Put the customer's email and phone on the suppression list (R-ERASE-05) for
        ``reason`` (consent.suppression.REASONS): keyed hashes, no link to the customer."""

    def seal(self, session: Session, customer_id: str | None, label: str, data: bytes) -> bytes:
        """Seal request data (under the customer's key when known)."""

    def open(self, session: Session, customer_id: str | None, label: str, blob: bytes) -> bytes:
        """Open what ``seal`` sealed."""


class Downstream(Protocol):
    """The registered systems that hold copies and must act on requests."""

    def systems(self, session: Session) -> list[tuple[str, str]]:
        """(id, name) of every system that receives webhooks."""

    def resend(self, session: Session, *, system_id: str, event_type: str,
               data: Mapping[str, Any], customer_id: str | None, attempt: int) -> None:
        """Send ``event_type`` to this one system again, after a delay that grows with
        ``attempt`` (the system reported its part ``failed`` that many times; 0: at once,
        a DPO asked for it)."""


class Exporter(Protocol):
    """Assembles and stores the answer to an access or portability request."""

    def build(self, session: Session, *, request_id: str, customer_id: str,
              portability: bool) -> None:
        """Build the export (encrypted at rest) and tell the subject where to get it."""


@dataclass(frozen=True)
class Receipt:
    """What acknowledges a request (R-DSAR-02, Art. 12(3)): its id, type, receipt and due
    dates, and the language it was made in (a portal page's; None when not known)."""

    request_id: str
    type: str
    received_at: datetime
    due_at: datetime
    language: str | None = None


class Notifier(Protocol):
    """Mails to the subject, queued in the caller's transaction."""

    def verification_link(self, session: Session, *, receipt: Receipt, customer_id: str | None,
                          token: str) -> None:
        """Send the customer the single-use link that proves the requester controls their
        address (an address nobody has gets ``no_account`` instead), with the request's
        acknowledgement."""

    def acknowledge(self, session: Session, *, receipt: Receipt, customer_id: str,
                    address: str | None = None, locale: str | None = None) -> None:
        """Acknowledge a request verified when it arrived (R-DSAR-02). ``address`` and
        ``locale``: where and in which language, when the customer's record will be gone
        before the mail leaves (an erasure carried out at once)."""

    def no_account(self, session: Session, *, receipt: Receipt, address: str,
                   closes_at: datetime) -> None:
        """Tell the address's owner (only them) that no customer is known under it, and
        invite them to ask again with another email address, a phone or an order number
        (Art. 11(2), 12(2)); without an answer the request closes at ``closes_at``. It
        acknowledges the request too."""

    def schedule_close_unidentified(self, session: Session, *, request_id: str,
                                    at: datetime) -> None:
        """Close the request at ``at`` if nobody was identified by then
        (``Requests.close_unidentified``)."""

    def tell_subject(self, session: Session, *, request_id: str, customer_id: str | None,
                     template: str, data: Mapping[str, str]) -> None:
        """Tell the subject about their request (extension, rejection, completion)."""

    def schedule_reminders(self, session: Session, *, request_id: str, due_at: datetime,
                           times: Sequence[datetime]) -> None:
        """Remind the DPO of the deadline ``due_at`` at each of ``times``
        (dsar.deadlines.reminder_times: a week before, and when it passes)."""
