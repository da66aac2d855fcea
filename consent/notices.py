"""Privacy notices: immutable texts, identified by version and language, with their SHA-256."""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy import select
from sqlalchemy.orm import Session

import audit
from audit.clock import utcnow
from consent.errors import Conflict, UnknownNotice
from consent.models import Notice


def sha256_of(text: str) -> str:
    """The hex SHA-256 of a notice's text (UTF-8), as stored and as events record it."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def publish(session: Session, *, version: str, language: str, text: str,
            actor: audit.Actor) -> tuple[Notice, bool]:
    """Store a notice; the same text again is a no-op, other text for the version is a 409."""
    digest = sha256_of(text)
    existing = session.get(Notice, (version, language))
    if existing is not None:
        if not hmac.compare_digest(existing.sha256, digest):
            raise Conflict(f"notice {version} ({language}) is published with other text; "
                           "notices never change: publish a new version")
        return existing, False
    notice = Notice(version=version, language=language, text=text, sha256=digest,
                    created_at=utcnow())
    session.add(notice)
    session.flush()
    audit.record(session, actor=actor, action="notice.published",
                 details={"version": version, "language": language, "sha256": digest})
    return notice, True


def get(session: Session, version: str, language: str) -> Notice:
    """The published notice, or UnknownNotice."""
    notice = session.get(Notice, (version, language))
    if notice is None:
        raise UnknownNotice(f"no notice {version} in {language}")
    return notice


def latest(session: Session, language: str) -> Notice | None:
    """The newest notice in ``language`` (by publication), else the newest in English."""
    for lang in dict.fromkeys((language, "en")):
        notice = session.scalars(select(Notice).where(Notice.language == lang)
                                 .order_by(Notice.created_at.desc()).limit(1)).first()
        if notice is not None:
            return notice
    return None


def all_notices(session: Session) -> list[Notice]:
    """Every published notice, newest first (then by language)."""
    return list(session.scalars(select(Notice).order_by(Notice.created_at.desc(),
                                                        Notice.version, Notice.language)))
