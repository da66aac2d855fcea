"""The Art. 15(1)-(2) information of an access answer (``information.json``), built from
this customer's own records, not from the generic privacy notice (EDPB guidelines 01/2022
on the right of access, section 5.2.3; R-ACC-01, R-ACC-02).

- purposes: those the gate allows for them now, with the basis it allows them on, and
  those their data is still held for under a legal duty (retained records);
- categories: of the data actually held (the profile fields that have a value, events,
  consent decisions, statements, requests, what other systems reported);
- recipients: the systems that received their data (the disclosure log) and the outside
  recipients the purposes that apply to them name;
- source: who wrote each item (the audit log), retention per category, transfers and
  automated decision-making from the registry of the purposes that apply, their rights.

Every section is present; an empty one says "none".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.clock import rfc3339, utcnow
from consent import purposes as registry
from consent.models import ConsentEvent
from consent.purposes import Purpose
from dsar.models import DataSubjectRequest, RequestSystem
from privacy_hub.gate.checks import Checker
from privacy_hub.hub import Hub
from privacy_hub.models import System
from privacy_hub.rights import disclosures as disclosure_log
from privacy_hub.rights import provenance
from privacy_hub.vault.models import (
    PERSONAL_FIELDS,
    CustomerEvent,
    CustomerStatement,
    CustomerTcString,
    RetainedRecord,
)

NONE = "none"
RIGHTS = {
    "access": "Art. 15: a copy of your data and this information, free of charge",
    "rectification": "Art. 16: have inaccurate data corrected and incomplete data completed",
    "erasure": "Art. 17: have your data erased",
    "restriction": "Art. 18: have processing restricted",
    "portability": "Art. 20: receive the data you provided in a machine-readable format",
    "objection": "Art. 21: object to processing on legitimate interests, and to direct "
                 "marketing at any time",
    "withdraw_consent": "Art. 7(3): withdraw consent at any time, as easily as you gave it",
}
COMPLAINT = ("You may lodge a complaint with a supervisory authority (Art. 77 GDPR), in "
             "particular in the member state where you live or work, and seek a judicial "
             "remedy (Art. 79).")
#: the category of personal data each profile field is (the vault's fields are fixed)
FIELD_CATEGORIES = {
    "email": "contact data", "phone": "contact data", "address": "address",
    "first_name": "identity", "last_name": "identity", "birth_date": "identity",
    "external_id": "identity", "locale": "preferences",
    # segments, scores and other derived data the shop attaches
    "attributes": "inferred preferences",
}
CONSENTS = "consent decisions"
STATEMENTS = "supplementary statements"
REQUESTS = "data subject requests"
DOWNSTREAM = "records held by our other systems"
#: the files of the export that hold the copy of the data (Art. 15(3))
COPY = ("data.json", "index.html", "profile.csv", "consents.csv", "events.csv",
        "requests.csv", "disclosures.csv")

checker = Checker()


def _or_none(items: Sequence[Any]) -> Sequence[Any] | str:
    return list(items) if items else NONE


def information(hub: Hub, session: Session, customer_id: str, *,
                log: Sequence[Mapping[str, Any]] | None = None,
                now: datetime | None = None) -> dict[str, Any]:
    """Art. 15(1)(a)-(h) and 15(2), tailored to this customer's actual processing;
    ``log``: their disclosure log, if the caller read it already."""
    now = now or utcnow()
    if log is None:
        log, _ = disclosure_log.for_customer(session, customer_id)
    registered = {p.key: p for p in registry.all_purposes(session)}
    applied = _applied(session, customer_id, registered, now)
    held = _held_fields(hub, session, customer_id)
    records = _records(session, customer_id)
    categories = _categories(held, records, applied, registered)
    sources = provenance.sources(session, customer_id, held)
    return {
        "confirmation": True,
        "controller": {"name": hub.settings.controller_name,
                       "contact": hub.settings.controller_email,
                       "dpo": hub.settings.dpo_email or hub.settings.controller_email},
        "personal_data": {"fields": _or_none(held),
                          "records": {k: len(v) if isinstance(v, dict | list) else v
                                      for k, v in records.items()},
                          "disclosures": len(log), "files": list(COPY)},
        "purposes": _or_none([_purpose(p, why) for p, why in applied]),
        "categories": _or_none([{"category": name, "data": sorted(c["data"]),
                                 "purposes": sorted(c["purposes"])}
                                for name, c in sorted(categories.items())]),
        "recipients": _or_none(_recipients(session, log, [p for p, _ in applied])),
        "retention": _or_none(_retention(hub, categories, registered, applied)),
        "rights": RIGHTS,
        "complaint": COMPLAINT,
        "source": _or_none(sources),
        "automated_decisions": _or_none([
            {"purpose": p.key, **d} for p, _ in applied
            if (d := automated_decisions(p)) is not None]),
        "transfers": _or_none([{"purpose": p.key, **t} for p, _ in applied
                               for t in transfers(p)]),
    }


# -- the purpose registry's fields of Art. 15(1)(h) and 15(2) ---------------------------
def transfers(purpose: Purpose) -> list[dict[str, Any]]:
    """The purpose's transfers outside the EEA: recipient, country, safeguard."""
    return [asdict(t) for t in purpose.transfers]


def automated_decisions(purpose: Purpose) -> dict[str, Any] | None:
    """The purpose's automated decision-making (Art. 22): logic, significance, consequences."""
    found = purpose.automated_decisions
    return asdict(found) if found is not None else None


# -- purposes -----------------------------------------------------------------------------
def _applied(session: Session, customer_id: str, registered: Mapping[str, Purpose],
             now: datetime) -> list[tuple[Purpose, dict[str, Any]]]:
    """The purposes that apply now, each with why: the gate's answer, or a legal hold."""
    out: list[tuple[Purpose, dict[str, Any]]] = []
    for key, purpose in registered.items():
        answer = checker.check(session, customer_id, key, now)
        if answer.allowed:
            out.append((purpose, {"applies_because": str(answer.reason),
                                  "valid_until": rfc3339(answer.valid_until)}))
    holds = session.execute(
        select(RetainedRecord.purpose, func.max(RetainedRecord.hold_until))
        .where(RetainedRecord.customer_id == customer_id).group_by(RetainedRecord.purpose))
    allowed = {p.key for p, _ in out}
    for key, until in holds:
        if key in registered and key not in allowed:
            out.append((registered[key], {"applies_because": "legal_obligation_hold",
                                          "valid_until": rfc3339(until)}))
    return out


def _purpose(p: Purpose, why: Mapping[str, Any]) -> dict[str, Any]:
    return {"purpose": p.key, "title": p.title, "description": p.description,
            "legal_basis": str(p.legal_basis), "legitimate_interest": p.lia_ref, **why}


# -- what is held -------------------------------------------------------------------------
def _held_fields(hub: Hub, session: Session, customer_id: str) -> list[str]:
    """The profile fields that have a value (read from the row: nothing is decrypted)."""
    row = hub.vault.get_row(session, customer_id)
    return [name for name in PERSONAL_FIELDS if getattr(row, f"{name}_ct") is not None]


def _records(session: Session, customer_id: str) -> dict[str, Any]:
    """What else is held, by kind: events and consent decisions per purpose, counts of
    the rest, the systems that reported data for the subject's requests."""
    def per_purpose(column: Any, where: Any) -> dict[str, int]:
        return {k: n for k, n in session.execute(
            select(column, func.count()).where(where).group_by(column))}

    def count(where: Any) -> int:
        return int(session.scalar(select(func.count()).where(where)) or 0)

    reported = session.scalars(
        select(RequestSystem.system).distinct()
        .join(DataSubjectRequest, DataSubjectRequest.id == RequestSystem.request_id)
        .where(DataSubjectRequest.customer_id == customer_id, RequestSystem.data_ct.is_not(None)))
    return {
        "events": per_purpose(CustomerEvent.purpose, CustomerEvent.customer_id == customer_id),
        CONSENTS: per_purpose(ConsentEvent.purpose, ConsentEvent.customer_id == customer_id),
        "tc_strings": count(CustomerTcString.customer_id == customer_id),
        STATEMENTS: count(CustomerStatement.customer_id == customer_id),
        REQUESTS: count(DataSubjectRequest.customer_id == customer_id),
        DOWNSTREAM: sorted(reported),
    }


def _categories(held: Iterable[str], records: Mapping[str, Any],
                applied: Sequence[tuple[Purpose, Any]],
                registered: Mapping[str, Purpose]) -> dict[str, dict[str, set[str]]]:
    """Category → the data held in it and the purposes it is held for."""
    out: dict[str, dict[str, set[str]]] = {}

    def add(category: str, data: str, purposes: Iterable[str]) -> None:
        entry = out.setdefault(category, {"data": set(), "purposes": set()})
        entry["data"].add(data)
        entry["purposes"].update(purposes)

    for name in held:
        add(FIELD_CATEGORIES.get(name, name), name,
            [p.key for p, _ in applied if name in p.fields])
    for key in records["events"]:
        purpose = registered.get(key)
        for category in (purpose.data_categories if purpose else ()) or ("interaction events",):
            add(category, "events", [key])
    if records[CONSENTS] or records["tc_strings"]:
        add(CONSENTS, "consent decisions", records[CONSENTS])
    if records["tc_strings"]:
        add(CONSENTS, "tc_strings", [])
    if records[STATEMENTS]:
        add(STATEMENTS, "supplementary_statements", [])
    if records[REQUESTS]:
        add(REQUESTS, "requests", [])
    for system in records[DOWNSTREAM]:
        add(DOWNSTREAM, system, [])
    for purpose, why in applied:
        if why["applies_because"] == "legal_obligation_hold":
            for category in purpose.data_categories or ("records kept under a legal duty",):
                add(category, "retained records", [purpose.key])
    return out


# -- recipients ---------------------------------------------------------------------------
def _recipients(session: Session, log: Sequence[Mapping[str, Any]],
                applied: Sequence[Purpose]) -> list[dict[str, Any]]:
    """The systems the disclosure log names, then the outside recipients (not registered
    systems) that the purposes which apply to the customer name."""
    systems = set(session.scalars(select(System.name)))
    out = disclosure_log.recipients(log)
    outside: dict[str, set[str]] = {}
    for p in applied:
        for name in p.recipients:
            if name not in systems:
                outside.setdefault(name, set()).add(p.key)
    out += [{"recipient": name, "type": "recipient named for a purpose",
             "purposes": sorted(keys)} for name, keys in sorted(outside.items())]
    return out


# -- retention ----------------------------------------------------------------------------
def _store_rule(hub: Hub, store: str) -> tuple[int | None, str]:
    """The period (days, if fixed) and the rule of a store that no purpose governs, from
    the settings the retention table (privacy_hub/retention/policies.py) reads."""
    s = hub.settings
    if store == CONSENTS:
        days = s.consent_proof_retention_days
        return days, (f"kept while the consent is in force and for {days} days after it "
                      "ended, as proof of consent (Art. 7(1))")
    if store == REQUESTS:
        days = s.retention_requests_days
        return days, f"kept for {days} days after the request was closed, as proof of its answer"
    if store == STATEMENTS:
        return None, "kept as long as the data they complete"
    if store == DOWNSTREAM:
        return None, "kept by each system under the periods of the purposes it serves"
    days = s.inactivity_days
    return days, (f"kept while your account is active; erased after {days} days without "
                  f"activity (you are told {s.inactivity_notice_days} days before)")


def _retention(hub: Hub, categories: Mapping[str, Mapping[str, set[str]]],
               registered: Mapping[str, Purpose],
               applied: Sequence[tuple[Purpose, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Per category: the longest period of the purposes it is held for (the longest running
    purpose wins), or its store's rule; a legal hold names its end."""
    holds = {p.key: why["valid_until"] for p, why in applied
             if why["applies_because"] == "legal_obligation_hold"}
    out = []
    for name, c in sorted(categories.items()):
        governed = [registered[k] for k in sorted(c["purposes"]) if k in registered]
        if name in (CONSENTS, REQUESTS, STATEMENTS, DOWNSTREAM) or not governed:
            days, rule = _store_rule(hub, name)
            out.append({"category": name, "period_days": days, "rule": rule})
            continue
        longest = max(governed, key=lambda p: p.retention_days)
        entry: dict[str, Any] = {
            "category": name, "period_days": longest.retention_days,
            "rule": f"{longest.retention_days} days, the longest period of the purposes it is "
                    f"held for ({longest.key})"}
        held_until = sorted(holds[p.key] for p in governed if p.key in holds)
        if held_until:
            entry["held_until"] = held_until[-1]
        out.append(entry)
    return out
