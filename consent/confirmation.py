"""Double opt-in: the emailed single-use link that turns a pending consent into a granted
one. The link's token is stored only as its SHA-256."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from audit.clock import rfc3339
from consent.domain_events import DomainEvent, emit
from consent.errors import TokenInvalid
from consent.gate import Status
from consent.ledger_rows import current_state
from consent.models import ConfirmationToken
from consent.purposes import Purpose

CONFIRMATION_TTL = timedelta(days=7)


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def request_confirmation(session: Session, customer_id: str, purpose: Purpose,
                         event_id: str, now: datetime, *, locale: str | None = None) -> None:
    """Store a link for the pending ledger event ``event_id`` and queue the
    ``consent.confirmation_requested`` event that mails it (in ``locale``, the language
    of the page the customer decided on, when known; else in their profile's)."""
    token = secrets.token_urlsafe(32)
    session.add(ConfirmationToken(
        token_hash=_token_hash(token), event_id=event_id, customer_id=customer_id,
        purpose=purpose.key, expires_at=now + CONFIRMATION_TTL))
    emit(session, DomainEvent(
        "consent.confirmation_requested",
        {"customer_id": customer_id, "purpose": purpose.key,
         "purpose_title": purpose.text(locale).title,
         "expires_at": rfc3339(now + CONFIRMATION_TTL),
         **({"locale": locale} if locale else {}),
         # the mail's language is settled when it is sent (the profile's, if no page's)
         **({"translated": {"purpose_title": {
             language: text.title for language, text in purpose.translations.items()}}}
            if purpose.translations else {})},
        customer_id=customer_id, purpose=purpose.key, private={"token": token}))


def use_token(session: Session, token: str, now: datetime) -> ConfirmationToken:
    """Mark the link used and return it; TokenInvalid if it is unknown, used, expired,
    or superseded by a later decision on the same purpose."""
    row = session.get(ConfirmationToken, _token_hash(token), with_for_update=True)
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise TokenInvalid("this confirmation link is unknown, already used or expired")
    current = current_state(session, row.customer_id, row.purpose)
    if current is None or current.status != Status.PENDING_CONFIRMATION \
            or current.last_event_id != row.event_id:
        raise TokenInvalid("this confirmation link was superseded by a later decision")
    row.used_at = now
    return row
