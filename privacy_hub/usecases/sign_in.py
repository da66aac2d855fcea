"""Customers sign in to the privacy portal with a single-use link sent to their email address.

The answer, and the work done, are the same whether or not the address belongs to a
customer (no account enumeration): one blind-index lookup, one mail queued, one audit
entry. Only the mailbox's owner learns which mail it was. Tokens are random, kept only
as their SHA-256, single use, valid 15 minutes, and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from sqlalchemy.orm import Session

import audit
from audit.clock import utcnow
from privacy_hub.hub import Hub
from privacy_hub.jobs import outbox
from privacy_hub.models import SignInLink
from privacy_hub.vault import activity
from privacy_hub.vault.blind_index import NormalisationError, normalise_email

LINK_TTL = timedelta(minutes=15)


class InvalidAddress(ValueError):
    """The text is not an email address; the message says what to fix."""


class LinkRefused(Exception):
    """The link is unknown, used or expired: one message for all three."""


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _language(locale: str | None) -> dict[str, str]:
    """The mail's ``locale`` entry: only a page's own language, so none means "the
    customer's profile decides"."""
    return {"locale": locale} if locale else {}


def send_link(hub: Hub, session: Session, email: str, *, locale: str | None = None) -> None:
    """Mail a sign-in link to the customer with this address, or a "no account" note to
    an address that belongs to nobody; in ``locale`` (the page's language) when given,
    else the customer's own. Callers commit."""
    try:
        normalised = normalise_email(email)
    except NormalisationError:
        raise InvalidAddress("Enter an email address, like name@example.com") from None
    row = hub.vault.find_one(session, "email", normalised)
    now = utcnow()
    if row is not None and row.status != "erased":
        token = secrets.token_urlsafe(32)
        session.add(SignInLink(token_hash=_digest(token), customer_id=row.id, created_at=now,
                               expires_at=now + LINK_TTL))
        outbox.enqueue_mail(session, template="portal_sign_in", customer_id=row.id,
                            data={"minutes": int(LINK_TTL.total_seconds() // 60),
                                  **_language(locale)},
                            secrets={"token": token})
        audit.record(session, actor=audit.Actor("customer", row.id),
                     action="portal.sign_in_link_sent", customer_id=row.id, details={})
    else:
        outbox.enqueue_mail(session, template="portal_no_account", to_staff=normalised,
                            data=_language(locale))
        audit.record(session, actor=audit.Actor("system", "portal"),
                     action="portal.sign_in_link_sent", details={"account": False})


def redeem(session: Session, token: str) -> str:
    """Use a link: the customer id it signs in. Raises LinkRefused. Callers commit."""
    digest = _digest(token)
    row = session.get(SignInLink, digest, with_for_update=True)
    now = utcnow()
    if (row is None or not hmac.compare_digest(row.token_hash, digest)
            or row.used_at is not None or row.expires_at <= now):
        raise LinkRefused("This sign-in link is unknown, used or expired.")
    row.used_at = now
    activity.touch(session, row.customer_id, now)  # R-RET-02
    audit.record(session, actor=audit.Actor("customer", row.customer_id),
                 action="portal.signed_in", customer_id=row.customer_id, details={})
    return row.customer_id


def is_valid(session: Session, token: str) -> bool:
    """Whether the link would sign someone in now (for the page that shows its button)."""
    row = session.get(SignInLink, _digest(token))
    return row is not None and row.used_at is None and row.expires_at > utcnow()
