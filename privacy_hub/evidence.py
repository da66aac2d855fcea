"""The evidence pack for a supervisory authority (R-AUD-03; GDPR Art. 7(1), 31, 58(1)(a)).

For one customer and one purpose: what the customer was told (the purpose's versions and
the notice texts, with their hashes recomputed), what they decided and how (the ledger
events with the shop's UI evidence, its hash recomputed, or when it was purged, R-CREC-06;
the signed receipts, verified here), what the gate
answered (the check log, and its answer now as ``current_decision``), what limited
processing (restriction, objection, erasure) and the audit entries that corroborate it
all, each entry's hash recomputed. Customer ids only: nothing in the pack is decrypted.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import audit
from audit.clock import rfc3339
from consent import flags, ledger_reads, proof
from consent import purposes as registry
from consent.gate import ALL_DIRECT_MARKETING
from consent.models import ConsentCheck, FlagEvent, Notice, PurposeVersion, Receipt
from consent.notices import sha256_of
from consent.purposes import Purpose
from consent.receipts import ReceiptInvalid
from consent.receipts import verify as verify_jws
from privacy_hub.config import Settings
from privacy_hub.gate.checklog import CheckLog
from privacy_hub.gate.checks import Checker
from privacy_hub.vault.errors import CustomerNotFound
from privacy_hub.vault.models import Customer
from privacy_hub.vault.proof import ProofVault

log = logging.getLogger(__name__)

#: the newest check log rows in a pack
MAX_CHECKS = 1_000
#: the newest audit entries of other uses naming the purpose (reads, events, earlier
#: packs); entries about consent and processing flags are always all in
MAX_USE_ENTRIES = 1_000
_AUDIT_PAGE = 1_000
_IN_CHUNK = 500
CHAIN_VERIFICATION = "GET /api/v1/audit/verify"
RECEIPT_KEYS = "GET /api/v1/keys/receipts"
#: flag history kinds that concern every purpose
_EVERY_PURPOSE = frozenset({"restricted", "restriction_lifted", "erased"})
#: flag kinds of the suppression list (R-ERASE-05), which concern direct marketing only
_SUPPRESSION = frozenset({"suppressed", "suppression_lifted"})

checker = Checker()


def _same(a: str, b: str) -> bool:
    """Two hex digests are equal (bytes: a tampered value need not be ASCII)."""
    return hmac.compare_digest(a.encode(), b.encode())


def flush_checks(checklog: CheckLog) -> bool:
    """Write this process's buffered gate answers, so recent checks are in the pack.

    Call it before the pack's session reads anything (on SQLite a read keeps its
    snapshot). False if the write failed: the pack is then built without them.
    """
    try:
        checklog.flush()
    except Exception:
        log.warning("writing the check log before an evidence pack failed", exc_info=True)
        return False
    return True


def assemble(session: Session, customer_id: str, purpose_key: str, *, settings: Settings,
             jwks: Mapping[str, Any], now: datetime, keys: ProofVault) -> dict[str, Any]:
    """The pack for ``customer_id`` and ``purpose_key``.

    CustomerNotFound or UnknownPurpose if either does not exist; an erased customer
    still gets one (proof of consent outlives erasure, and the pack holds no personal data).
    """
    customer = session.execute(select(Customer.status, Customer.erased_at)
                               .where(Customer.id == customer_id)).first()
    if customer is None:
        raise CustomerNotFound(customer_id)
    purpose = registry.get(session, purpose_key)
    events = [_with_evidence_check(e) for e in ledger_reads.history(session, customer_id, keys)
              if e["purpose"] == purpose_key]
    checks, checks_capped = _checks(session, customer_id, purpose_key)
    entries, entries_capped = _audit_entries(session, customer_id, purpose)
    answer = checker.check(session, customer_id, purpose_key, now)
    return {
        "customer_id": customer_id,
        "customer_status": flags.status_of(session, customer_id, customer.status),
        "customer_erased_at": rfc3339(customer.erased_at),
        "purpose": purpose_key,
        "generated_at": rfc3339(now),
        "controller": settings.controller,
        "purpose_versions": _purpose_versions(session, purpose_key),
        "consent_events": events,
        "evidence_retention": _retention(settings, events),
        "receipts": _receipts(session, customer_id, events, jwks),
        "receipt_keys": {"source": RECEIPT_KEYS, "jwks": dict(jwks)},
        "notices": _notices(session, events),
        "checks": checks,
        "checks_capped": checks_capped,
        "processing_flags": _flag_history(session, customer_id, purpose),
        "audit_entries": entries,
        "audit_entries_capped": entries_capped,
        "audit_entries_verified": all(e["hash_matches"] and e["linked"] for e in entries),
        "audit_chain_verification": CHAIN_VERIFICATION,
        "current_decision": {
            "customer_id": customer_id, "purpose": purpose_key, "allowed": answer.allowed,
            "legal_basis": str(answer.legal_basis), "reason": str(answer.reason),
            "valid_until": rfc3339(answer.valid_until)},
    }


_PURGED = {proof.RETENTION: "its retention after the consent ended ran out",
           proof.ERASURE: "the customer was erased: crypto-shredded with their key"}


def _with_evidence_check(event: dict[str, Any]) -> dict[str, Any]:
    """The event with ``evidence_sha256_matches`` (its evidence, hashed now, is what the
    event, its receipt and its audit entry name; None when there is none to hash) and,
    in place of purged evidence, ``evidence_note``: "purged on <date> (why)"."""
    evidence, digest = event.get("evidence"), event.get("evidence_sha256")
    matches = None
    if digest is not None and evidence is not None:
        matches = _same(proof.sha256_of(proof.canonical(evidence)), digest)
    note = None
    if event.get("evidence_purged_at"):
        why = _PURGED.get(event.get("evidence_purge_reason") or "", "purged")
        note = f"purged on {event['evidence_purged_at'][:10]} ({why})"
    elif digest is not None and evidence is None:
        note = "held but unreadable (the customer's key is gone, or it does not authenticate)"
    return {**event, "evidence_sha256_matches": matches, "evidence_note": note}


def _retention(settings: Settings, events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"retention_days": settings.consent_proof_retention_days,
            "rule": ("Evidence is kept while the consent is in force and for retention_days "
                     "after it ended (superseded by a later decision, withdrawn or refused, "
                     "or expired), then purged; at once when the customer is erased. The "
                     "SHA-256 stays in the event, its receipt and its audit entry."),
            "kept": sum(1 for e in events if e.get("evidence")),
            "purged": sum(1 for e in events if e.get("evidence_purged_at"))}


def _purpose_versions(session: Session, key: str) -> list[dict[str, Any]]:
    rows = session.scalars(select(PurposeVersion).where(PurposeVersion.key == key)
                           .order_by(PurposeVersion.version, PurposeVersion.revision))
    return [{"version": r.version, "revision": r.revision, "material": r.material,
             "created_at": rfc3339(r.created_at), "snapshot": json.loads(r.snapshot)}
            for r in rows]


def _receipts(session: Session, customer_id: str, events: Sequence[Mapping[str, Any]],
              jwks: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each event's receipt as GET /api/v1/receipts/{id} gives it, with ``verified``: the
    JWS verifies with the hub's keys, signs exactly the stored receipt, and that receipt
    names this event and purpose."""
    wanted = {e["receipt_id"]: e for e in events if e.get("receipt_id")}
    rows = {r.id: r for r in session.scalars(
        select(Receipt).where(Receipt.customer_id == customer_id))}
    out = []
    for receipt_id, event in wanted.items():
        row = rows.get(receipt_id)
        if row is None:
            out.append({"receipt_id": receipt_id, "receipt": None, "jws": None,
                        "verified": False})
            continue
        try:
            stored: dict[str, Any] | None = json.loads(row.payload)
        except ValueError:
            stored = None
        out.append({"receipt_id": row.id, "receipt": stored, "jws": row.jws,
                    "verified": stored is not None and _receipt_verifies(row.jws, stored, event,
                                                                         jwks)})
    return out


def _receipt_verifies(jws: str, stored: Mapping[str, Any], event: Mapping[str, Any],
                      jwks: Mapping[str, Any]) -> bool:
    try:
        signed = verify_jws(jws, jwks)
    except (ReceiptInvalid, ValueError, KeyError, TypeError):
        return False
    record = signed.get("iso27560") or {}
    return (signed == stored and record.get("record_id") == event["id"]
            and record.get("purpose_id") == event["purpose"])


def _notices(session: Session, events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each notice version and language the events name, its text and stored hash, and
    whether the hash of the text (recomputed now) and the hashes the events recorded
    match the stored one."""
    named: dict[tuple[str, str], list[str | None]] = {}
    for e in events:
        if e.get("notice_version"):
            named.setdefault((e["notice_version"], e["notice_language"] or "en"), []).append(
                e.get("notice_sha256"))
    out = []
    for (version, language), recorded in named.items():
        notice = session.get(Notice, (version, language))
        if notice is None:
            out.append({"version": version, "language": language, "text": None, "sha256": None,
                        "created_at": None, "sha256_matches": False,
                        "recorded_sha256_matches": False})
            continue
        out.append({
            "version": version, "language": language, "text": notice.text,
            "sha256": notice.sha256, "created_at": rfc3339(notice.created_at),
            "sha256_matches": _same(sha256_of(notice.text), notice.sha256),
            "recorded_sha256_matches": all(
                r is not None and _same(r, notice.sha256) for r in recorded),
        })
    return out


def _checks(session: Session, customer_id: str, purpose: str) -> tuple[list[dict[str, Any]], bool]:
    """The gate's answers for this customer and purpose, newest first (the per-customer
    index of the check log), at most MAX_CHECKS; whether there were more."""
    rows = list(session.scalars(
        select(ConsentCheck)
        .where(ConsentCheck.customer_id == customer_id, ConsentCheck.purpose == purpose)
        .order_by(ConsentCheck.checked_at.desc(), ConsentCheck.id.desc())
        .limit(MAX_CHECKS + 1)))
    return [{"checked_at": rfc3339(r.checked_at), "system": r.system, "allowed": r.allowed,
             "reason": r.reason, "via": r.via} for r in rows[:MAX_CHECKS]], len(rows) > MAX_CHECKS


def _objection_concerns(objected: str | None, purpose: Purpose) -> bool:
    """An objection names this purpose, or all direct marketing and this is some."""
    return objected == purpose.key or (objected == ALL_DIRECT_MARKETING
                                       and purpose.direct_marketing)


def _flag_history(session: Session, customer_id: str, purpose: Purpose) -> list[dict[str, Any]]:
    """Restrictions, erasure, and the objections (and overriding grounds) that concern
    this purpose, oldest first."""
    rows = session.scalars(select(FlagEvent).where(FlagEvent.customer_id == customer_id)
                           .order_by(FlagEvent.recorded_at, FlagEvent.id))
    return [{"kind": r.kind, "purpose": r.purpose, "detail": r.detail,
             "recorded_at": rfc3339(r.recorded_at)}
            for r in rows if r.kind in _EVERY_PURPOSE or _objection_concerns(r.purpose, purpose)
            or (r.kind in _SUPPRESSION and purpose.direct_marketing)]


def _core(action: str, details: Mapping[str, Any], purpose: Purpose) -> bool:
    """An entry about this purpose's consent or about the flags that limit it."""
    if action.startswith("consent."):
        return details.get("purpose") == purpose.key
    if action == "processing.objected":
        named = details.get("purposes")
        return isinstance(named, list) and any(_objection_concerns(p, purpose) for p in named)
    if action == "processing.compelling_grounds_recorded":
        return details.get("purpose") == purpose.key
    if action == "processing.customer_relationship":
        return purpose.soft_opt_in
    if action.startswith("suppression."):  # R-ERASE-05: every direct-marketing purpose
        return purpose.direct_marketing
    return action.startswith("processing.") or action == "customer.erased"


def _audit_entries(session: Session, customer_id: str,
                   purpose: Purpose) -> tuple[list[dict[str, Any]], bool]:
    """The customer's entries about this purpose's consent and processing flags (all of
    them), and the newest MAX_USE_ENTRIES of other entries naming the purpose, in seq
    order, each with its hash recomputed; whether other entries were left out."""
    core: list[audit.AuditEntry] = []
    uses: deque[audit.AuditEntry] = deque(maxlen=MAX_USE_ENTRIES)
    seen_uses = 0
    after: int | None = None
    while True:
        page = audit.entries(session, since_seq=after, customer_id=customer_id,
                             limit=_AUDIT_PAGE)
        for entry in page:
            try:
                details = json.loads(entry.details)
            except ValueError:
                details = None
            if not isinstance(details, dict):
                core.append(entry)  # unreadable: shown, and its hash will not match
            elif _core(entry.action, details, purpose):
                core.append(entry)
            elif details.get("purpose") == purpose.key:
                uses.append(entry)
                seen_uses += 1
        if len(page) < _AUDIT_PAGE:
            break
        after = page[-1].seq
    rows = sorted([*core, *uses], key=lambda e: e.seq)
    checked = _verify(session, rows)
    out = []
    for entry in rows:
        try:
            public = audit.public_entry(entry)
        except ValueError:
            public = {"seq": entry.seq, "recorded_at": rfc3339(entry.recorded_at),
                      "actor": {"type": entry.actor_type, "id": entry.actor_id},
                      "action": entry.action, "customer_id": entry.customer_id,
                      "details": {}, "prev_hash": entry.prev_hash, "hash": entry.hash}
        out.append({**public, **checked[entry.seq]})
    return out, seen_uses > len(uses)


def _verify(session: Session, rows: Sequence[audit.AuditEntry]) -> dict[int, dict[str, bool]]:
    """Per entry: ``hash_matches`` (its hash recomputed from its stored fields and its
    prev_hash, audit.entry_hash) and ``linked`` (its predecessor's stored hash is its
    prev_hash and its successor's prev_hash is its hash). Only these entries and their
    neighbours are read: the whole chain is GET /api/v1/audit/verify."""
    known = {e.seq: (e.prev_hash, e.hash) for e in rows}
    wanted = sorted({n for e in rows for n in (e.seq - 1, e.seq + 1)} - known.keys() - {0})
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start:start + _IN_CHUNK]
        known.update({seq: (prev, own) for seq, prev, own in session.execute(
            select(audit.AuditEntry.seq, audit.AuditEntry.prev_hash, audit.AuditEntry.hash)
            .where(audit.AuditEntry.seq.in_(chunk)))})
    # The first entry kept after a prune: its predecessor is the signed checkpoint (the
    # prune note) at seq - 1, which GET /api/v1/audit/verify checks with its signature.
    missing = [e.seq - 1 for e in rows if e.seq > 1 and e.seq - 1 not in known]
    if missing:
        known.update({seq: ("", own) for seq, own in session.execute(
            select(audit.AuditCheckpoint.seq, audit.AuditCheckpoint.hash)
            .where(audit.AuditCheckpoint.seq.in_(missing[:_IN_CHUNK])))})
    out = {}
    for e in rows:
        try:
            recomputed = audit.entry_hash(e.prev_hash, e.seq, e.recorded_at, e.actor_type,
                                          e.actor_id, e.action, e.customer_id, e.details)
            matches = _same(recomputed, e.hash)
        except (TypeError, ValueError):
            matches = False
        before = audit.GENESIS_HASH if e.seq == 1 else known.get(e.seq - 1, (None, None))[1]
        after = known.get(e.seq + 1)
        linked = before == e.prev_hash and (after is None or after[0] == e.hash)
        out[e.seq] = {"hash_matches": matches, "linked": linked}
    return out
