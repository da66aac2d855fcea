"""The gate: may this customer's data be used for this purpose, now?

``decide`` is a pure function of plain values, so it can be tested over the whole
state space. Order of precedence, strongest first:

1. unknown customer, erased customer: deny everything;
2. restriction (Art. 18): deny everything except legal-obligation purposes;
3. objection (Art. 21): direct marketing absolutely (21(3)); legitimate-interest and
   public-task purposes unless a DPO recorded compelling grounds (21(1)); a named
   consent purpose is denied too; contract and legal-obligation purposes are not
   objectable;
3a. suppression (R-ERASE-05): a customer made with an identifier on the suppression
   list (someone erased or objecting to direct marketing had it) is denied every
   direct-marketing purpose, on any basis, until they consent to direct marketing
   themselves (consent/suppression.py);
4. the soft opt-in (ePrivacy Art. 13(2)): only for customers who bought something;
5. a basis other than consent: allowed on that basis;
6. consent: allowed only while a consent to the current version is in force.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from consent.purposes import LegalBasis

ALL_DIRECT_MARKETING = "*"


class Reason(StrEnum):
    """Why the gate answered as it did (API.md's ``reason``)."""

    GRANTED = "granted"
    NOT_GRANTED = "not_granted"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    PENDING_CONFIRMATION = "pending_confirmation"
    RECONSENT_REQUIRED = "reconsent_required"
    OBJECTED = "objected"
    RESTRICTED = "restricted"
    ERASED = "erased"
    #: R-ERASE-05: an identifier on the suppression list, no fresh consent of their own yet
    SUPPRESSED = "suppressed"
    UNKNOWN_CUSTOMER = "unknown_customer"
    LEGAL_BASIS = "legal_basis"


class Status(StrEnum):
    """A customer's consent state for one purpose, as shown to them and to services.

    The ledger stores granted, refused, withdrawn and pending_confirmation; expired and
    reconsent_required are derived (``effective_status``), not_set means no decision."""

    GRANTED = "granted"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    PENDING_CONFIRMATION = "pending_confirmation"
    RECONSENT_REQUIRED = "reconsent_required"
    NOT_SET = "not_set"


#: the legal bases an objection under Art. 21(1) applies to
OBJECTABLE = frozenset({LegalBasis.LEGITIMATE_INTERESTS, LegalBasis.PUBLIC_TASK})


@dataclass(frozen=True, slots=True)
class Rule:
    """What the gate needs to know about a purpose."""

    key: str
    legal_basis: LegalBasis
    version: int
    direct_marketing: bool
    #: email marketing of own similar products to customers, until they object
    soft_opt_in: bool = False


@dataclass(frozen=True, slots=True)
class State:
    """The stored consent state of one customer for one purpose, with the ledger event
    that left it (its id, its receipt's id, the notice version shown: R-GATE-03)."""

    status: str
    purpose_version: int
    expires_at: datetime | None = None
    event_id: str | None = None
    receipt_id: str | None = None
    notice_version: str | None = None


@dataclass(frozen=True, slots=True)
class Flags:
    """The customer's processing flags (owned by consent, set by data subject requests)."""

    exists: bool = True
    erased: bool = False
    restricted: bool = False
    #: purpose keys objected to; ALL_DIRECT_MARKETING for every direct-marketing purpose
    objections: frozenset[str] = frozenset()
    #: purposes for which a DPO recorded compelling legitimate grounds (Art. 21(1))
    compelling_grounds: frozenset[str] = frozenset()
    #: bought something: contact details obtained in the context of a sale
    customer_relationship: bool = False
    #: made with an identifier on the suppression list (R-ERASE-05), not lifted since
    suppressed: bool = False


#: the flags of a customer the hub does not know
UNKNOWN = Flags(exists=False)


@dataclass(frozen=True, slots=True)
class Answer:
    """The gate's answer to "may this purpose use this customer's data now?"."""

    allowed: bool
    reason: Reason
    legal_basis: LegalBasis
    valid_until: datetime | None = None
    #: R-GATE-03: the consent state the answer rests on (its ledger event, receipt and
    #: notice version); None when it rests on none (another basis, an unknown or erased
    #: customer, a restriction, an objection, the suppression list, no decision yet)
    state: State | None = None


def effective_status(rule: Rule, state: State | None, now: datetime) -> Status:
    """The consent status as it stands at ``now`` (expiry and re-consent applied)."""
    if state is None:
        return Status.NOT_SET
    if state.status == Status.GRANTED:
        if state.purpose_version < rule.version:
            return Status.RECONSENT_REQUIRED
        if state.expires_at is not None and now >= state.expires_at:
            return Status.EXPIRED
    return Status(state.status)


def _objected(rule: Rule, flags: Flags) -> bool:
    """The customer's objection (Art. 21) stops this purpose."""
    if rule.direct_marketing and (ALL_DIRECT_MARKETING in flags.objections
                                  or rule.key in flags.objections):
        return True  # Art. 21(3): absolute, no balancing, no override
    if rule.key not in flags.objections:
        return False
    if rule.legal_basis in OBJECTABLE:
        return rule.key not in flags.compelling_grounds
    return rule.legal_basis is LegalBasis.CONSENT


_DENY_BY_STATUS = {
    Status.NOT_SET: Reason.NOT_GRANTED,
    Status.REFUSED: Reason.NOT_GRANTED,
    Status.WITHDRAWN: Reason.WITHDRAWN,
    Status.EXPIRED: Reason.EXPIRED,
    Status.PENDING_CONFIRMATION: Reason.PENDING_CONFIRMATION,
    Status.RECONSENT_REQUIRED: Reason.RECONSENT_REQUIRED,
}


def decide(rule: Rule, state: State | None, flags: Flags, now: datetime) -> Answer:
    """The gate's answer: allowed or not, and why (the precedence in this module's docstring)."""
    basis = rule.legal_basis
    if not flags.exists:
        return Answer(False, Reason.UNKNOWN_CUSTOMER, basis)
    if flags.erased:
        return Answer(False, Reason.ERASED, basis)
    if flags.restricted and basis is not LegalBasis.LEGAL_OBLIGATION:
        return Answer(False, Reason.RESTRICTED, basis)
    if _objected(rule, flags):
        return Answer(False, Reason.OBJECTED, basis)
    if flags.suppressed and rule.direct_marketing:
        return Answer(False, Reason.SUPPRESSED, basis)
    if rule.soft_opt_in and not flags.customer_relationship:
        return Answer(False, Reason.NOT_GRANTED, basis)
    if basis is not LegalBasis.CONSENT:
        return Answer(True, Reason.LEGAL_BASIS, basis)
    status = effective_status(rule, state, now)
    if status is Status.GRANTED:
        return Answer(True, Reason.GRANTED, basis, state.expires_at if state else None, state)
    return Answer(False, _DENY_BY_STATUS[status], basis, None, state)
