"""The gate's use cases: may a service use a customer's data for a purpose? One customer
(now or at a past time), many, a whole audience; purpose-bound reads; interaction events.

Every answer goes to the check log (who asked, about whom, what was answered)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

import audit
from audit.clock import utcnow
from audit.ids import new_id
from consent import flags as flag_service
from consent.gate import UNKNOWN, Answer, decide
from privacy_hub.gate.checks import Checker, Group, Reader
from privacy_hub.hub import Hub
from privacy_hub.jobs import art14
from privacy_hub.rights import disclosures
from privacy_hub.usecases.access import PurposeFilter, any_purpose, require_purpose
from privacy_hub.usecases.customers import canonical_id
from privacy_hub.usecases.errors import Invalid, Refused
from privacy_hub.vault import activity
from privacy_hub.vault.models import CustomerEvent

checker = Checker()

#: the event type that makes a customer of a prospect (the soft opt-in's relationship)
PURCHASE = "purchase"

_UUID_RE = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_UUID = re.compile(_UUID_RE)
_HEX_AND_DASH = b"0123456789abcdefABCDEF-"


def is_uuid(value: str) -> bool:
    """Whether ``value`` can be a customer id (anything else is an unknown customer)."""
    return _UUID.fullmatch(value) is not None


def all_uuids(values: Sequence[str]) -> bool:
    """Whether every value is a UUID (``is_uuid``), checked in one pass over all of them
    at C speed: 10,000 ids in well under a millisecond."""
    n = len(values)
    joined = "".join(values)
    if len(joined) != 36 * n or not joined.isascii():
        return False
    raw = joined.encode("ascii")
    dashes = "-" * n
    # only hex digits and dashes, four dashes per id, each where a UUID has them
    return (not raw.translate(None, _HEX_AND_DASH) and raw.count(b"-") == 4 * n
            and joined[8::36] == dashes and joined[13::36] == dashes
            and joined[18::36] == dashes and joined[23::36] == dashes)


def _system(actor: audit.Actor) -> str:
    return actor.id or actor.kind


def check(hub: Hub, customer_id: str, purpose: str, *, actor: audit.Actor) -> Answer:
    """The hot path: the answer now, from one statement on a pooled driver connection
    outside any transaction (it sees every committed write). Unknown purpose: 404."""
    valid = is_uuid(customer_id)
    art14_jobs: list[str] = []  # R-DEAD-05: a marketing use sends the Art. 14 notice
    with Reader.connect(hub.engine) as reader:
        answer = checker.decide_one(reader, customer_id if valid else None, purpose, utcnow(),
                                    art14_jobs)
    if answer.allowed and art14_jobs:
        art14.on_marketing_check(hub, customer_id, art14_jobs[0])
    hub.checklog.add(_system(actor), customer_id if valid else None, purpose, answer.allowed,
                     str(answer.reason), "check")
    return answer


def check_at(hub: Hub, session: Session, customer_id: str, purpose: str, at: datetime, *,
             actor: audit.Actor) -> Answer:
    """The answer that held at ``at``, rebuilt from the history."""
    valid = is_uuid(customer_id)
    if valid:
        answer = checker.check_at(session, customer_id, purpose, at)
    else:
        with Reader.connect(hub.engine) as reader:
            answer = checker.decide_one(reader, None, purpose, utcnow())
    hub.checklog.add(_system(actor), customer_id if valid else None, purpose, answer.allowed,
                     str(answer.reason), "check")
    return answer


@dataclass(frozen=True, slots=True)
class BatchAnswers:
    """A batch check's answers: the found customers in groups sharing an answer (each
    naming its customers' ledger events where the answer rests on them, R-GATE-03), and
    the answer for every other id asked (unknown customers, strings no id can be)."""

    groups: list[Group]
    unknown: Answer


def check_batch(hub: Hub, customer_ids: Sequence[str], purpose: str, *,
                actor: audit.Actor) -> BatchAnswers:
    """Many customers for one purpose (the caller puts the answers in the asked order)."""
    if customer_ids and max(map(len, customer_ids)) > 64:
        too_long = [i for i, cid in enumerate(customer_ids) if len(cid) > 64]
        raise Invalid("Customer ids are at most 64 characters.",
                      errors={f"customer_ids.{i}": ["longer than 64 characters"]
                              for i in too_long[:20]})
    # Usually every id is a UUID: checked all at once, else one by one. No customer id
    # holds a comma: the gate's statement joins ids with them.
    asked = set(customer_ids)
    if not all_uuids(customer_ids):
        asked = {c for c in asked if is_uuid(c)}
    now = utcnow()
    with Reader.connect(hub.engine) as reader:
        rule, groups = checker.answer_groups(reader, sorted(asked), purpose, now, proofs=True)
    allowed_ids = set().union(*(g.ids for g in groups if g.answer.allowed))
    allowed = sum(map(allowed_ids.__contains__, customer_ids))
    hub.checklog.add(_system(actor), None, purpose, allowed > 0,
                     f"{allowed}/{len(customer_ids)}", "batch")
    return BatchAnswers(groups, decide(rule, None, UNKNOWN, now))


def audience(hub: Hub, purpose: str, *, actor: audit.Actor,
             customer_ids: Sequence[str] | None = None, after: str | None = None,
             limit: int) -> tuple[list[str], str | None]:
    """The customers a purpose allows: among ``customer_ids``, or a page of all customers
    (after the id ``after``). Returns the ids and the last id of a full page, if any."""
    now = utcnow()
    with Reader.connect(hub.engine) as reader:
        if customer_ids is not None:
            ids = [c for c in customer_ids if is_uuid(c)]
            answers, _ = checker.decide_many(reader, ids, purpose, now)
            items = [cid for cid, a in zip(ids, answers, strict=True) if a.allowed]
            last = None
        else:
            items, last = checker.audience_page(reader, purpose, now, after=after, limit=limit)
    hub.checklog.add(_system(actor), None, purpose, bool(items), str(len(items)), "audience")
    return items, last


def read_for_purpose(hub: Hub, session: Session, customer_id: str, purpose: str, *,
                     actor: audit.Actor,
                     may_use: PurposeFilter = any_purpose) -> dict[str, Any]:
    """Only the fields the purpose may read, and only while the gate allows it (audited).

    A denial is audited too and raised as Refused with the gate's ``reason``: the caller
    keeps the audit entry although it answers with an error.
    """
    require_purpose(may_use, purpose)
    cid = canonical_id(customer_id)
    info = checker.rule(session, purpose)
    answer = checker.check(session, cid, purpose, utcnow())
    hub.checklog.add(_system(actor), cid, purpose, answer.allowed, str(answer.reason), "data")
    if not answer.allowed:
        audit.record(session, actor=actor, action="data.read_denied",
                     customer_id=cid if answer.reason != "unknown_customer" else None,
                     details={"purpose": purpose, "reason": str(answer.reason)})
        raise Refused(f"The gate does not allow {purpose!r} for this customer.",
                      type_="gate-denied", reason=str(answer.reason))
    if info.rule.direct_marketing:  # R-DEAD-05: before the first marketing use
        art14.on_marketing_use(session, cid, purpose)
    fields = json.loads(info.fields)
    profile = hub.vault.read(session, cid, actor=actor, purpose=purpose, only=fields)
    # R-ACC-03: the disclosure log, in the read's transaction (one row, names only)
    disclosures.record_read(session, customer_id=cid, system=_system(actor), purpose=purpose,
                            fields=fields, at=utcnow())
    return {"customer_id": cid, "purpose": purpose,
            "data": {k: profile.get(k) for k in fields}}


def ingest_events(hub: Hub, session: Session, events: Sequence[Mapping[str, Any]], *,
                  actor: audit.Actor, may_use: PurposeFilter = any_purpose) -> tuple[int, int]:
    """Store each interaction event, sealed under its customer's key, only if the gate
    allows its purpose for that customer. Returns (accepted, dropped)."""
    now = utcnow()
    errors = {f"events.{i}.occurred_at": ["lies in the future"]
              for i, e in enumerate(events) if e["occurred_at"] > now + timedelta(minutes=5)}
    if errors:
        raise Invalid("The request has invalid fields: " + ", ".join(errors), errors=errors)
    for purpose in {e["purpose"] for e in events}:
        require_purpose(may_use, purpose)
    allowed: set[tuple[str, str]] = set()
    for purpose in {e["purpose"] for e in events}:
        ids = list({e["customer_id"] for e in events
                    if e["purpose"] == purpose and is_uuid(e["customer_id"])})
        for cid, answer in zip(ids, checker.check_many(session, ids, purpose, now), strict=True):
            if answer.allowed:
                allowed.add((cid, purpose))
    keys = hub.keyring.data_keys(session, sorted({c for c, _ in allowed}))
    accepted = 0
    per_customer: dict[str, int] = {}
    bought: dict[str, datetime] = {}
    for e in events:
        key = keys.get(e["customer_id"])
        if (e["customer_id"], e["purpose"]) not in allowed or key is None:
            continue
        row_id = new_id()
        payload = json.dumps({"type": e["type"], "properties": e["properties"]},
                             sort_keys=True).encode()
        session.add(CustomerEvent(
            id=row_id, customer_id=e["customer_id"], purpose=e["purpose"],
            occurred_at=e["occurred_at"], recorded_at=now,
            payload_ct=key.seal("customer_events", "payload_ct", row_id, payload)))
        accepted += 1
        per_customer[e["customer_id"]] = per_customer.get(e["customer_id"], 0) + 1
        if e["type"] == PURCHASE:  # the soft opt-in's customer relationship
            flag_service.record_purchase(session, e["customer_id"], e["occurred_at"],
                                         actor=actor)
            bought[e["customer_id"]] = max(e["occurred_at"], bought.get(e["customer_id"],
                                                                        e["occurred_at"]))
    activity.touch_many(session, bought)  # R-RET-02: one update per buying customer
    for cid, count in per_customer.items():
        audit.record(session, actor=actor, action="events.ingested", customer_id=cid,
                     details={"count": count})
    return accepted, len(events) - accepted
