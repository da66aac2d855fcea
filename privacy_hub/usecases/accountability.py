"""Accountability (Art. 5(2)): the audit log and its verification, the evidence pack for a
supervisory authority (R-AUD-03), and the records of processing activities (Art. 30(1))."""

from __future__ import annotations

import base64
import csv
import io
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select
from sqlalchemy.orm import Session

import audit
from audit.clock import rfc3339, utcnow
from consent import dpv, event_chain
from consent import purposes as registry
from privacy_hub import evidence
from privacy_hub.hub import Hub
from privacy_hub.models import System
from privacy_hub.retention.policies import purpose_retention
from privacy_hub.usecases import rights_record, suppression
from privacy_hub.usecases.access import PurposeFilter, any_purpose, require_purpose
from privacy_hub.usecases.customers import canonical_id
from privacy_hub.usecases.retention import current_policies

SECURITY_MEASURES = (
    "Field-level AES-256-GCM encryption under one key per customer, keys wrapped under "
    "versioned key-encryption keys and a separate root key; erasure by destroying the key; "
    "keyed blind indexes for lookups; scoped, hashed API keys; tamper-evident audit log "
    "with signed checkpoints; TLS in transit.")
_CSV_COLUMNS = ["purpose", "name", "version", "legal_basis", "lia_ref", "further_processing_of",
                "compatibility_ref", "categories_of_data_subjects",
                "categories_of_personal_data", "recipients", "third_country_transfers",
                "retention", "security_measures", "consent_proof_retention"]


def audit_entries(session: Session, *, since_seq: int | None, action: str | None,
                  customer_id: str | None, limit: int) -> tuple[list[dict[str, Any]], int | None]:
    """Audit entries in sequence order, filtered: the items and the last seq when more follow."""
    rows = audit.entries(session, since_seq=since_seq, action=action, customer_id=customer_id,
                         limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return [audit.public_entry(e) for e in rows], rows[-1].seq if more else None


#: seq is a BIGINT: the newest page of the log is the one before this
_END_OF_LOG = 2**63 - 1


def audit_page(session: Session, *, after: int | None = None, before: int | None = None,
               action: str | None = None, actor_kind: str | None = None,
               customer_id: str | None = None, limit: int = 50) -> dict[str, Any]:
    """A page of entries in sequence order: after ``after``, else before ``before``, else
    the newest; with the seq to page on to older (``older_than``) and newer (``newer_than``)
    entries, None where no more match."""
    where: dict[str, Any] = {"action": action, "actor_type": actor_kind,
                             "customer_id": customer_id}
    if after is not None:
        rows = audit.entries(session, since_seq=after, limit=limit, **where)
    else:
        rows = audit.entries(session, before_seq=before if before is not None else _END_OF_LOG,
                             limit=limit, **where)
    older = bool(rows) and bool(audit.entries(session, before_seq=rows[0].seq, limit=1, **where))
    newer = bool(rows) and bool(audit.entries(session, since_seq=rows[-1].seq, limit=1, **where))
    return {"items": [audit.public_entry(e) for e in rows],
            "older_than": rows[0].seq if older else None,
            "newer_than": rows[-1].seq if newer else None}


def verify_audit_chain(hub: Hub, session: Session) -> dict[str, Any]:
    """Recompute the hash chain and check the signed checkpoints; names the first bad entry
    (and the last signed checkpoint, for people: the API's schema leaves it out)."""
    report = audit.verify_chain(session, hub.audit_public_keys())
    # R-CREC-03: an intact chain also vouches for the consent events it hashed.
    events = event_chain.verify_events(session, upto=report.head_seq) if report.ok else None
    bad = events if events is not None and not events.ok else report
    last = session.scalars(select(audit.AuditCheckpoint)
                           .order_by(audit.AuditCheckpoint.seq.desc()).limit(1)).first()
    return {"ok": bad.ok, "entries": report.entries,
            "head": {"seq": report.head_seq, "hash": report.head_hash},
            "first_bad_seq": bad.first_bad_seq, "problem": bad.problem,
            "consent_events": None if events is None else events.public(),
            "checkpoints_verified": report.checkpoints_verified,
            "first_seq": report.first_seq, "pruned_below_seq": report.pruned_below_seq,
            "last_checkpoint": None if last is None else {
                "seq": last.seq, "signed_at": rfc3339(last.signed_at), "key_id": last.key_id}}


def audit_checkpoints(hub: Hub, session: Session) -> dict[str, Any]:
    """Every signed checkpoint with the public key that verifies it, to keep outside this
    database: a chain rewritten after a checkpoint was signed no longer matches it."""
    signer = hub.audit_signer
    public = signer.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"algorithm": "Ed25519", "key_id": signer.key_id,
            "public_key": base64.urlsafe_b64encode(public).rstrip(b"=").decode("ascii"),
            "exported_at": rfc3339(utcnow()),
            "checkpoints": audit.export_checkpoints(session)}


def evidence_pack(hub: Hub, session: Session, customer_id: str, purpose: str, *,
                  actor: audit.Actor, export_format: str,
                  may_use: PurposeFilter = any_purpose) -> dict[str, Any]:
    """Everything that proves consent for one customer and purpose (audited)."""
    require_purpose(may_use, purpose)
    cid = canonical_id(customer_id)
    flushed = evidence.flush_checks(hub.checklog)  # before the session reads
    pack = evidence.assemble(session, cid, purpose, settings=hub.settings,
                             jwks=hub.receipt_jwks(session), now=utcnow(), keys=hub.proof)
    pack["check_log_flushed"] = flushed
    audit.record(session, actor=actor, action="evidence.exported", customer_id=cid,
                 details={"purpose": purpose, "format": export_format})
    return pack


def records_of_processing(hub: Hub, session: Session) -> dict[str, Any]:
    """The Art. 30(1) record, generated from the purpose and system registries."""
    systems = {s.name for s in session.scalars(select(System))}
    retention = current_policies(hub, session)  # R-RET-01: the one retention table
    items = []
    for p in registry.all_purposes(session):
        items.append({
            "purpose": p.key, "name": p.title, "description": p.description,
            "version": p.version, "legal_basis": str(p.legal_basis), "lia_ref": p.lia_ref,
            "dpv": p.dpv, "dpv_legal_basis": dpv.LEGAL_BASES[str(p.legal_basis)],
            "further_processing_of": p.source_purpose,
            "compatibility_ref": p.compatibility_ref,
            "categories_of_data_subjects": ["customers and prospects"],
            "categories_of_personal_data": list(p.data_categories),
            "special_category": p.special_category,
            "recipients": list(p.recipients),
            "internal_systems": sorted(r for r in p.recipients if r in systems),
            "third_country_transfers": "none",
            "retention": purpose_retention(retention, p.key),
            "security_measures": SECURITY_MEASURES,
            "consent_proof_retention": consent_proof_retention(hub, p.needs_consent),
        })
    items.append(suppression.ropa_activity(SECURITY_MEASURES))  # R-ERASE-05
    return {"controller": hub.settings.controller, "generated_at": rfc3339(utcnow()),
            "activities": items,
            "consent_proof_retention_days": hub.settings.consent_proof_retention_days,
            "retention_policies": [r.public() for r in retention],
            "data_subject_requests": rights_record.request_handling(hub.working_days)}


def consent_proof_retention(hub: Hub, needs_consent: bool) -> str | None:
    """R-CREC-06, Art. 30(1)(f): how long proof of a consent-based activity's consents is
    kept (None for an activity on another legal basis)."""
    if not needs_consent:
        return None
    days = hub.settings.consent_proof_retention_days
    return (f"Proof of consent (each decision's evidence: hashed client address, user agent, "
            f"page, signals) is kept while the consent is in force and {days} days after it "
            "ended (superseded, withdrawn or expired), then purged; at once on erasure. The "
            "decisions themselves, their receipts and their SHA-256 stay in the ledger.")


def records_as_csv(record: dict[str, Any]) -> str:
    """The records of processing as a spreadsheet: one row per activity."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["controller", *_CSV_COLUMNS])
    for a in record["activities"]:
        writer.writerow([record["controller"]["name"], *[
            "; ".join(a[c]) if isinstance(a[c], list) else a[c] for c in _CSV_COLUMNS]])
    return out.getvalue()
