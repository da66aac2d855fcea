"""What a signed-in customer does for themselves in the portal: the same rules as the
API's (the ledger, the gate, the request workflow, the vault), seen from the subject's
side and limited to their own records. A signed-in session proves who they are, so their
requests are verified at once (R-DSAR-03)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import marshmallow as ma
from sqlalchemy import select
from sqlalchemy.orm import Session

import audit
from consent import flags, notices
from consent import purposes as registry
from consent.ledger_reads import current_states
from consent.ledger_reads import history as ledger_history
from consent.ledger_reads import receipt as ledger_receipt
from consent.purposes import LegalBasis, Purpose
from dsar.erasure import legal_holds
from dsar.models import DataSubjectRequest
from dsar.requests import Requests
from dsar.workflow import FINAL, RequestStatus
from privacy_hub.hub import Hub
from privacy_hub.models import ExportFile
from privacy_hub.rights.adapters import requests_service
from privacy_hub.rights.exports import ExportGone, Exports
from privacy_hub.schemas import CustomerPatchSchema
from privacy_hub.usecases import consents
from privacy_hub.usecases.errors import Gone, Invalid, NotFound
from privacy_hub.vault import activity
from privacy_hub.vault.errors import CustomerNotFound

#: the Art. 18(1) grounds a restriction names, for the portal's form
RESTRICTION_GROUNDS: tuple[str, ...] = flags.RESTRICTION_GROUNDS
#: the requests a customer files themselves from the portal
SELF_SERVICE = ("access", "portability", "erasure", "rectification", "restriction",
                "objection")


def audit_actor(customer_id: str) -> audit.Actor:
    """The customer acting for themselves, as the audit log names them (by id only)."""
    return audit.Actor("customer", customer_id)


def notice(session: Session, language: str) -> dict[str, Any] | None:
    """The privacy notice a decision made now rests on (the newest in this language)."""
    found = notices.latest(session, language)
    return None if found is None else {"version": found.version, "language": found.language}


def consent_purposes(session: Session, language: str | None = None) -> list[Purpose]:
    """Every purpose on the basis of consent, its texts in ``language`` where published."""
    return [p.in_language(language) for p in registry.all_purposes(session)
            if p.legal_basis is LegalBasis.CONSENT]


def choices(session: Session, customer_id: str, language: str) -> dict[str, Any]:
    """Every consent purpose with the customer's status, and the notice they decide under;
    purpose texts in the page's language (Art. 12(1)), else the default text."""
    states = {s["purpose"]: s for s in current_states(session, customer_id)}
    purposes = consent_purposes(session, language)
    return {"purposes": purposes, "states": states, "notice": notice(session, language),
            "granted_sharing": [p for p in purposes if p.sale_or_sharing
                                and states[p.key]["status"] == "granted"]}


def decide(hub: Hub, session: Session, customer_id: str, purposes: list[str], granted: bool, *,
           language: str, evidence: Mapping[str, Any], gpc: bool) -> list[dict[str, Any]]:
    """Allow or refuse purposes: one ledger event each, `source: portal`, with the page's
    evidence and a signed receipt. Purposes already in that state are left alone."""
    known = {p.key: p for p in consent_purposes(session)}
    unknown = [k for k in purposes if k not in known]
    if unknown:
        raise NotFound("No such consent purpose.")
    states = {s["purpose"]: s["status"] for s in current_states(session, customer_id)}
    shown = notice(session, language)
    made = []
    settled = ("granted",) if granted else ("refused", "withdrawn")
    for key in purposes:
        if len(purposes) > 1 and states.get(key) in settled:
            continue  # "Allow all" / "Refuse all" records only what changes
        made.append(consents.record(hub, session, customer_id, {
            "purpose": key, "granted": granted, "collection_method": "portal_form",
            "notice_version": shown["version"] if shown else None,
            "language": shown["language"] if shown else "en", "locale": language,
            "consent_type": "explicit" if known[key].special_category else "regular",
            "evidence": {**evidence, "notice_version": shown["version"] if shown else None},
        }, actor=audit_actor(customer_id), source="portal", gpc=gpc))
    return made


def processing(session: Session, language: str | None = None) -> dict[str, Any]:
    """Purposes on other legal bases, and those the customer may object to (Art. 21),
    in ``language`` where published."""
    others = [p.in_language(language) for p in registry.all_purposes(session)
              if p.legal_basis is not LegalBasis.CONSENT]
    return {"purposes": others, "objectable": objectable(session, language)}


def objectable(session: Session, language: str | None = None) -> list[Purpose]:
    """Direct marketing (objection absolute) and legitimate-interest purposes."""
    return [p.in_language(language) for p in registry.all_purposes(session)
            if p.direct_marketing or p.legal_basis is LegalBasis.LEGITIMATE_INTERESTS]


def history(session: Session, customer_id: str, language: str | None = None) -> dict[str, Any]:
    """Every decision, newest first, with each purpose's title in ``language``."""
    return {"events": list(reversed(ledger_history(session, customer_id))),
            "titles": {p.key: p.text(language).title for p in registry.all_purposes(session)}}


def receipt(session: Session, customer_id: str, receipt_id: str) -> dict[str, Any]:
    """A receipt of the customer's own decision, with its JWS."""
    row = ledger_receipt(session, receipt_id)
    if row is None or row.customer_id != customer_id:
        raise NotFound("No such receipt.")
    return {"receipt_id": row.id, "receipt": json.loads(row.payload), "jws": row.jws}


def requests(session: Session, customer_id: str) -> list[dict[str, Any]]:
    """The customer's requests, newest first, with status, due date and outcome."""
    rows = session.scalars(select(DataSubjectRequest)
                           .where(DataSubjectRequest.customer_id == customer_id)
                           .order_by(DataSubjectRequest.received_at.desc())).all()
    return Requests.public_many(session, rows)


def open_statuses() -> set[str]:
    """Statuses a request can still be cancelled in (before it ends)."""
    return {str(s) for s in RequestStatus} - {str(s) for s in FINAL}


def file_request(hub: Hub, session: Session, customer_id: str, kind: str,
                 details: Mapping[str, Any] | None = None,
                 language: str | None = None) -> dict[str, Any]:
    """A request the signed-in session verifies at once; it takes effect as the API's.
    ``language``: the page's, for the acknowledgement when the profile names none."""
    if kind not in SELF_SERVICE:
        raise Invalid("Unknown kind of request.", errors={"type": ["not a kind of request"]})
    req = requests_service(hub).submit_signed_in(session, customer_id=customer_id, type=kind,
                                                 details=details, language=language)
    activity.touch(session, customer_id, req.created_at)  # R-RET-02
    return Requests.public(session, req)


def correct(hub: Hub, session: Session, customer_id: str,
            changes: Mapping[str, Any], language: str | None = None) -> dict[str, Any]:
    """Rectification (Art. 16) under the API's rules for the same fields."""
    try:
        CustomerPatchSchema().load(dict(changes))
    except ma.ValidationError as exc:
        raise Invalid("Some fields are invalid.", errors=_flat(exc.messages)) from None
    return file_request(hub, session, customer_id, "rectification", {"changes": dict(changes)},
                        language=language)


def _flat(messages: Any) -> dict[str, list[str]]:
    flat: dict[str, list[str]] = {}
    for name, inner in dict(messages).items():
        if isinstance(inner, dict):
            for part, more in inner.items():
                flat[f"{name}_{part}"] = [str(m) for m in more]
        else:
            flat[str(name)] = [str(m) for m in inner]
    return flat


def cancel_request(hub: Hub, session: Session, customer_id: str, request_id: str) -> None:
    """Withdraw one of the customer's own open requests."""
    mine = session.get(DataSubjectRequest, request_id)
    if mine is None or mine.customer_id != customer_id:
        raise NotFound("No such request.")
    requests_service(hub).cancel(session, request_id, actor=audit_actor(customer_id),
                                 note="cancelled by the customer in the portal")


def downloads(session: Session, customer_id: str) -> dict[str, Any]:
    """Access and portability requests, and the archives still kept for them."""
    ready = {row.request_id: row.delete_at for row in session.scalars(
        select(ExportFile).where(ExportFile.customer_id == customer_id,
                                 ExportFile.deleted_at.is_(None)))}
    return {"items": [r for r in requests(session, customer_id)
                      if r["type"] in ("access", "portability")], "ready": ready}


def export(hub: Hub, session: Session, customer_id: str, request_id: str) -> bytes:
    """The customer's own archive, downloaded in their session (audited)."""
    mine = session.get(DataSubjectRequest, request_id)
    if mine is None or mine.customer_id != customer_id:
        raise NotFound("No such download.")
    try:
        archive = Exports(hub).read(session, request_id)
    except ExportGone:
        raise Gone("The file was deleted after 30 days; ask again any time.") from None
    audit.record(session, actor=audit_actor(customer_id), action="export.downloaded",
                 customer_id=customer_id, details={"request_id": request_id, "via": "portal"})
    return archive


def erasure_holds(session: Session, language: str | None = None) -> list[dict[str, Any]]:
    """What an erasure keeps by law, as the erasure itself decides it (dsar.erasure)."""
    return [{"purpose": p.key, "title": text.title, "categories": list(p.data_categories),
             "days": p.retention_days, "why": text.description}
            for p in legal_holds(session) for text in [p.text(language)]]


def signed_in(hub: Hub, session: Session, customer_id: str) -> dict[str, Any] | None:
    """The customer a portal session belongs to, with their locale; None once they are
    unknown or erased (their session ends with them)."""
    try:
        row = hub.vault.get_row(session, customer_id)
    except CustomerNotFound:
        return None
    if row.status == "erased":
        return None
    locale = hub.vault.profile(session, row, only=["locale"]).get("locale")
    return {"id": row.id, "locale": locale if isinstance(locale, str) else None}
