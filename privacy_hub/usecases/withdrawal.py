"""Erasure after a withdrawal of consent or an objection (R-ERASE-03, Art. 17(1)(b), (c)).

The interaction events a customer's consent to a purpose was the ground for (rows of
``customer_events`` with that purpose) are erased once the consent is withdrawn, and the
events of a purpose the customer objected to once the objection stands (direct marketing
at once, Art. 21(3); an Art. 21(1) objection unless a DPO recorded compelling grounds),
unless something else still covers them:

- the gate still allows the purpose itself (a non-consent legal basis, or the customer
  granted it again before this ran): then nothing is to be erased;
- a purpose registered as compatible further processing of it (``source_purpose``,
  Art. 6(4), followed down its chain) that the gate allows for this customer: the data
  still serve it, so they are kept.

While the customer's processing is restricted (Art. 18), nothing is erased: restriction
means the data are only stored, and the subject may need them (Art. 18(1)(b), (c)).

The withdrawal or objection queues the job in its own transaction
(privacy_hub/jobs/follow_ups.py); privacy_hub/jobs/withdrawal.py runs it here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, delete
from sqlalchemy.orm import Session

import audit
from audit.clock import utcnow
from consent import flags
from consent import purposes as registry
from consent.purposes import Purpose
from privacy_hub.gate.checks import Checker
from privacy_hub.hub import Hub
from privacy_hub.vault.models import CustomerEvent

ACTOR = audit.Actor("job", "erasure")
#: why the events are erased, as the audit entry says
CAUSES = ("withdrawal", "objection")
_checker = Checker()


def further_purposes(key: str, purposes: Sequence[Purpose]) -> list[str]:
    """The purposes that process data of ``key`` further (Art. 6(4)), directly or down a
    chain of ``source_purpose``s, in registry order."""
    found: list[str] = []
    sources = {key}
    while True:
        more = [p.key for p in purposes if p.source_purpose in sources and p.key not in found
                and p.key != key]
        if not more:
            return found
        found += more
        sources = set(more)


def erase_uncovered_events(hub: Hub, session: Session, customer_id: str,
                           purposes: Sequence[str] | None, *, cause: str,
                           actor: audit.Actor = ACTOR) -> int:
    """Erase this customer's events of ``purposes`` (None: every direct-marketing
    purpose) that nothing covers any more (see the module); audited with the count,
    the purposes erased and those kept. Returns how many events were erased. Callers
    commit."""
    if cause not in CAUSES:
        raise ValueError(f"cause is one of {CAUSES}")
    registered = registry.all_purposes(session)
    known = {p.key: p for p in registered}
    targets = ([p.key for p in registered if p.direct_marketing] if purposes is None
               else [k for k in dict.fromkeys(purposes) if k in known])
    if not targets:
        return 0
    details: dict[str, Any] = {"cause": cause}
    if flags.flags_for(session, customer_id).restricted:
        audit.record(session, actor=actor, action="events.erasure_deferred",
                     customer_id=customer_id,
                     details={**details, "purposes": targets, "reason": "restricted"})
        return 0
    now = utcnow()
    allowed: dict[str, bool] = {}

    def allows(key: str) -> bool:
        if key not in allowed:
            allowed[key] = _checker.check(session, customer_id, key, now).allowed
        return allowed[key]

    erased: dict[str, int] = {}
    kept: dict[str, str] = {}
    for key in targets:
        if allows(key):
            kept[key] = "allowed"
            continue
        covering = next((q for q in further_purposes(key, registered) if allows(q)), None)
        if covering is not None:
            kept[key] = covering
            continue
        result = cast(CursorResult[Any], session.execute(
            delete(CustomerEvent).where(CustomerEvent.customer_id == customer_id,
                                        CustomerEvent.purpose == key)
            .execution_options(synchronize_session=False)))
        if result.rowcount:
            erased[key] = int(result.rowcount)
    total = sum(erased.values())
    if total or kept:
        audit.record(session, actor=actor, action="events.erased", customer_id=customer_id,
                     details={**details, "count": total, "purposes": erased,
                              "kept": kept})
    return total
