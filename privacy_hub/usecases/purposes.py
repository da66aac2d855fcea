"""Purposes (what personal data is used for, on which legal basis) and privacy notices."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

import audit
from consent import notices
from consent import purposes as registry
from privacy_hub.jobs.reconsent import notify_reconsent
from privacy_hub.usecases.access import PurposeFilter, any_purpose
from privacy_hub.usecases.errors import Refused
from privacy_hub.vault.models import PERSONAL_FIELDS


def all_purposes(session: Session, *,
                 may_use: PurposeFilter = any_purpose) -> list[dict[str, Any]]:
    """Every purpose the caller may see."""
    return [p.public() for p in registry.all_purposes(session) if may_use(p.key)]


def get(session: Session, key: str, *, may_use: PurposeFilter = any_purpose) -> dict[str, Any]:
    """One purpose."""
    if not may_use(key):
        raise Refused("This system is not registered for this purpose.",
                      type_="purpose-not-allowed")
    return registry.get(session, key).public()


def create(session: Session, values: Mapping[str, Any], *,
           actor: audit.Actor) -> dict[str, Any]:
    """Register a purpose (version 1). Its legal basis never changes."""
    return registry.create(session, values, actor=actor, allowed_fields=PERSONAL_FIELDS).public()


def update(session: Session, key: str, changes: Mapping[str, Any], *,
           actor: audit.Actor) -> dict[str, Any]:
    """Change a purpose; a material change raises its version (re-consent needed) and,
    in the same transaction, queues a mail to each customer whose consent it invalidates
    (R-CONSENT-09): how many is the answer's ``notified``."""
    purpose = registry.update(session, key, changes, actor=actor, allowed_fields=PERSONAL_FIELDS)
    notified = notify_reconsent(session, purpose, actor=actor) if changes.get("material") else 0
    return {**purpose.public(), "notified": notified}


def _notice(n: Any) -> dict[str, Any]:
    return {"version": n.version, "language": n.language, "text": n.text, "sha256": n.sha256,
            "created_at": n.created_at}


def publish_notice(session: Session, *, version: str, language: str, text: str,
                   actor: audit.Actor) -> tuple[dict[str, Any], bool]:
    """Publish an immutable notice; returns it and whether it is new (the same text again
    is not; other text for a published version is a conflict)."""
    notice, created = notices.publish(session, version=version, language=language, text=text,
                                      actor=actor)
    return _notice(notice), created


def notice(session: Session, version: str, language: str) -> dict[str, Any]:
    """The exact text of a notice version, with its SHA-256."""
    return _notice(notices.get(session, version, language))


def history(session: Session, key: str) -> list[dict[str, Any]]:
    """A purpose's versions as they were, newest first: each with its revision, whether
    the change was material (customers asked again), when, and the purpose then."""
    return [{"version": v.version, "revision": v.revision, "material": v.material,
             "created_at": v.created_at, "purpose": json.loads(v.snapshot)}
            for v in registry.history(session, key)]


def all_notices(session: Session) -> list[dict[str, Any]]:
    """Every published notice, newest first, with its SHA-256."""
    return [_notice(n) for n in notices.all_notices(session)]
