"""Proof of identity by email (Art. 12(6)): a single-use link, stored only as a hash,
compared in constant time, valid for seven days."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from audit.clock import utcnow
from dsar.errors import VerificationFailed
from dsar.models import VerificationToken

TOKEN_TTL = timedelta(days=7)


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_token(request_id: str, now: datetime) -> tuple[str, dict[str, Any]]:
    """A new link token for the request and the row that stores only its hash (every
    column of ``request_verification_tokens``)."""
    token = secrets.token_urlsafe(32)
    return token, {"token_hash": _token_hash(token), "request_id": request_id,
                   "expires_at": now + TOKEN_TTL, "used_at": None}


def issue_token(session: Session, request_id: str, now: datetime) -> str:
    """A new link token for the request; only its hash is stored."""
    token, row = new_token(request_id, now)
    session.add(VerificationToken(**row))
    return token


def use_token(session: Session, request_id: str, token: str) -> None:
    """Mark the link used; VerificationFailed if it is unknown, used, expired or for
    another request."""
    row = session.get(VerificationToken, _token_hash(token), with_for_update=True)
    now = utcnow()
    if (row is None or not hmac.compare_digest(row.request_id, request_id)
            or row.used_at is not None or row.expires_at <= now):
        raise VerificationFailed("this verification link is unknown, used or expired")
    row.used_at = now
