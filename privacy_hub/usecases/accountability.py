"""Accountability (Art. 5(2)): the audit log and its verification, the evidence pack for a
supervisory authority (R-AUD-03), and the records of processing activities (Art. 30(1))."""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import audit
from audit.clock import rfc3339, utcnow
from consent import dpv
from consent import purposes as registry
from privacy_hub import evidence
from privacy_hub.hub import Hub
from privacy_hub.models import System
from privacy_hub.usecases.access import PurposeFilter, any_purpose, require_purpose
from privacy_hub.usecases.customers import canonical_id

SECURITY_MEASURES = (
    "Field-level AES-256-GCM encryption under one key per customer, keys wrapped under "
    "versioned key-encryption keys and a separate root key; erasure by destroying the key; "
    "keyed blind indexes for lookups; scoped, hashed API keys; tamper-evident audit log "
    "with signed checkpoints; TLS in transit.")
_CSV_COLUMNS = ["purpose", "name", "version", "legal_basis", "lia_ref", "further_processing_of",
                "compatibility_ref", "categories_of_data_subjects",
                "categories_of_personal_data", "recipients", "third_country_transfers",
                "retention", "security_measures"]


def audit_entries(session: Session, *, since_seq: int | None, action: str | None,
                  customer_id: str | None, limit: int) -> tuple[list[dict[str, Any]], int | None]:
    """Audit entries in sequence order, filtered: the items and the last seq when more follow."""
    rows = audit.entries(session, since_seq=since_seq, action=action, customer_id=customer_id,
                         limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return [audit.public_entry(e) for e in rows], rows[-1].seq if more else None


def verify_audit_chain(hub: Hub, session: Session) -> dict[str, Any]:
    """Recompute the hash chain and check the signed checkpoints; names the first bad entry."""
    report = audit.verify_chain(session, hub.audit_public_keys())
    return {"ok": report.ok, "entries": report.entries,
            "head": {"seq": report.head_seq, "hash": report.head_hash},
            "first_bad_seq": report.first_bad_seq, "problem": report.problem,
            "checkpoints_verified": report.checkpoints_verified}


def evidence_pack(hub: Hub, session: Session, customer_id: str, purpose: str, *,
                  actor: audit.Actor, export_format: str,
                  may_use: PurposeFilter = any_purpose) -> dict[str, Any]:
    """Everything that proves consent for one customer and purpose (audited)."""
    require_purpose(may_use, purpose)
    cid = canonical_id(customer_id)
    flushed = evidence.flush_checks(hub.checklog)  # before the session reads
    pack = evidence.assemble(session, cid, purpose, settings=hub.settings,
                             jwks=hub.receipt_jwks(), now=utcnow())
    pack["check_log_flushed"] = flushed
    audit.record(session, actor=actor, action="evidence.exported", customer_id=cid,
                 details={"purpose": purpose, "format": export_format})
    return pack


def records_of_processing(hub: Hub, session: Session) -> dict[str, Any]:
    """The Art. 30(1) record, generated from the purpose and system registries."""
    systems = {s.name for s in session.scalars(select(System))}
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
            "retention": f"{p.retention_days} days",
            "security_measures": SECURITY_MEASURES,
        })
    return {"controller": hub.settings.controller, "generated_at": rfc3339(utcnow()),
            "activities": items}


def records_as_csv(record: dict[str, Any]) -> str:
    """The records of processing as a spreadsheet: one row per activity."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["controller", *_CSV_COLUMNS])
    for a in record["activities"]:
        writer.writerow([record["controller"]["name"], *[
            "; ".join(a[c]) if isinstance(a[c], list) else a[c] for c in _CSV_COLUMNS]])
    return out.getvalue()
