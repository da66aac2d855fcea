"""The gate's decisions over the whole state space (R-GATE-01..10, API.md "The gate")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from consent.gate import (
    ALL_DIRECT_MARKETING,
    Flags,
    Reason,
    Rule,
    State,
    Status,
    decide,
    effective_status,
)
from consent.purposes import LegalBasis

NOW = datetime(2026, 11, 23, 10, 15, tzinfo=UTC)
KEYS = ["marketing.email", "analytics", "fraud", "orders", "invoices"]

def _days_from_now(days: int) -> datetime:
    return NOW + timedelta(days=days)


rules = st.builds(Rule, key=st.sampled_from(KEYS), legal_basis=st.sampled_from(list(LegalBasis)),
                  version=st.integers(1, 4), direct_marketing=st.booleans(),
                  soft_opt_in=st.booleans())
states = st.one_of(st.none(), st.builds(
    State, status=st.sampled_from(["granted", "refused", "withdrawn", "pending_confirmation"]),
    purpose_version=st.integers(1, 4),
    expires_at=st.one_of(st.none(), st.integers(-400, 400).map(_days_from_now))))
flag_sets = st.builds(
    Flags, exists=st.booleans(), erased=st.booleans(), restricted=st.booleans(),
    objections=st.frozensets(st.sampled_from([*KEYS, ALL_DIRECT_MARKETING])),
    compelling_grounds=st.frozensets(st.sampled_from(KEYS)),
    customer_relationship=st.booleans(), suppressed=st.booleans())
times = st.integers(-30, 30).map(_days_from_now)


def oracle(rule: Rule, state: State | None, flags: Flags, now: datetime) -> tuple[bool, str]:
    """API.md's rules, restated as a table walk, independent of the implementation."""
    if not flags.exists:
        return False, "unknown_customer"
    if flags.erased:
        return False, "erased"  # "an erased customer is denied everything"
    if flags.restricted and rule.legal_basis != "legal_obligation":
        return False, "restricted"  # Art. 18: "denied every purpose except legal_obligation ones"
    named = rule.key in flags.objections
    dm_objection = rule.direct_marketing and (named or ALL_DIRECT_MARKETING in flags.objections)
    if dm_objection:
        return False, "objected"  # Art. 21(3): absolutely
    if named and rule.legal_basis in ("legitimate_interests", "public_task") \
            and rule.key not in flags.compelling_grounds:
        return False, "objected"  # Art. 21(1): unless compelling grounds recorded
    if named and rule.legal_basis == "consent":
        return False, "objected"
    if flags.suppressed and rule.direct_marketing:
        return False, "suppressed"  # R-ERASE-05: every direct-marketing purpose, any basis
    if rule.soft_opt_in and not flags.customer_relationship:
        return False, "not_granted"  # ePrivacy Art. 13(2): only customers who bought something
    if rule.legal_basis != "consent":
        return True, "legal_basis"
    if state is None or state.status == "refused":
        return False, "not_granted"
    if state.status in ("withdrawn", "pending_confirmation"):
        return False, state.status
    if state.purpose_version != rule.version and state.purpose_version < rule.version:
        return False, "reconsent_required"
    if state.expires_at is not None and state.expires_at <= now:
        return False, "expired"
    return True, "granted"


@given(rules, states, flag_sets, times)
def test_decide_matches_the_rules_everywhere(rule: Rule, state: State | None, flags: Flags,
                                             now: datetime) -> None:
    """R-GATE-01..07: the gate agrees with API.md for every combination."""
    decision = decide(rule, state, flags, now)
    assert (decision.allowed, str(decision.reason)) == oracle(rule, state, flags, now)
    assert decision.legal_basis is rule.legal_basis


@given(rules, states, flag_sets, times)
def test_allowed_only_for_granted_or_another_legal_basis(rule: Rule, state: State | None,
                                                         flags: Flags, now: datetime) -> None:
    """R-CREC-05 / R-GATE-01: default deny; only a valid consent or another basis allows."""
    decision = decide(rule, state, flags, now)
    if decision.allowed:
        assert decision.reason in (Reason.GRANTED, Reason.LEGAL_BASIS)
        assert flags.exists and not flags.erased
    if decision.reason is Reason.GRANTED:
        assert state is not None and state.status == "granted"
        assert decision.valid_until == state.expires_at


@given(rules, states, times)
def test_erased_or_unknown_customers_are_denied_everything(rule: Rule, state: State | None,
                                                           now: datetime) -> None:
    assert decide(rule, state, Flags(erased=True), now).reason is Reason.ERASED
    assert decide(rule, state, Flags(exists=False), now).reason is Reason.UNKNOWN_CUSTOMER


@given(st.sampled_from(list(LegalBasis)), st.frozensets(st.sampled_from(KEYS)))
def test_direct_marketing_objection_is_absolute(basis: LegalBasis, grounds: frozenset[str]) -> None:
    """R-GATE-07: no basis, consent or recorded grounds overrides a direct-marketing objection."""
    rule = Rule("marketing.email", basis, 1, direct_marketing=True)
    granted = State("granted", 1)
    for objections in ({ALL_DIRECT_MARKETING}, {"marketing.email"}):
        flags = Flags(objections=frozenset(objections), compelling_grounds=grounds | {"marketing.email"})
        decision = decide(rule, granted, flags, NOW)
        assert not decision.allowed and decision.reason is Reason.OBJECTED


def test_legitimate_interest_objection_yields_to_recorded_grounds() -> None:
    """R-GATE-05 / R-RRO-03."""
    rule = Rule("fraud", LegalBasis.LEGITIMATE_INTERESTS, 1, direct_marketing=False)
    assert decide(rule, None, Flags(), NOW).allowed
    objected = Flags(objections=frozenset({"fraud"}))
    assert decide(rule, None, objected, NOW).reason is Reason.OBJECTED
    overridden = Flags(objections=frozenset({"fraud"}), compelling_grounds=frozenset({"fraud"}))
    assert decide(rule, None, overridden, NOW).allowed


def test_restriction_spares_only_legal_obligations() -> None:
    """R-GATE-06."""
    restricted = Flags(restricted=True)
    for basis in LegalBasis:
        rule = Rule("p", basis, 1, direct_marketing=False)
        allowed = decide(rule, State("granted", 1), restricted, NOW).allowed
        assert allowed is (basis is LegalBasis.LEGAL_OBLIGATION)


def test_consent_for_one_purpose_never_allows_another() -> None:
    """R-GATE-04: the state passed is per purpose; no state means no consent."""
    other = Rule("analytics", LegalBasis.CONSENT, 1, direct_marketing=False)
    assert decide(other, None, Flags(), NOW).reason is Reason.NOT_GRANTED


def test_material_change_requires_reconsent_and_expiry_expires() -> None:
    """R-CONSENT-09, R-CONSENT-10."""
    rule = Rule("analytics", LegalBasis.CONSENT, 2, direct_marketing=False)
    assert decide(rule, State("granted", 1), Flags(), NOW).reason is Reason.RECONSENT_REQUIRED
    lapsed = State("granted", 2, expires_at=NOW - timedelta(seconds=1))
    assert decide(rule, lapsed, Flags(), NOW).reason is Reason.EXPIRED
    valid = State("granted", 2, expires_at=NOW + timedelta(days=1))
    decision = decide(rule, valid, Flags(), NOW)
    assert decision.allowed and decision.valid_until == NOW + timedelta(days=1)


def test_effective_status_names() -> None:
    rule = Rule("analytics", LegalBasis.CONSENT, 1, direct_marketing=False)
    assert effective_status(rule, None, NOW) is Status.NOT_SET
    assert effective_status(rule, State("refused", 1), NOW) is Status.REFUSED
    assert effective_status(rule, State("pending_confirmation", 1), NOW) is Status.PENDING_CONFIRMATION


@given(st.booleans(), states, flag_sets, times)
def test_the_soft_opt_in_reaches_only_customers_who_bought_and_never_objected(
        bought: bool, state: State | None, flags: Flags, now: datetime) -> None:
    """R-EPRIV-03: (a) no purchase, no consent: denied; (b) a customer who bought: allowed
    on the basis; (c) who opted out (an objection): denied, whatever else holds."""
    rule = Rule("marketing.email_customers", LegalBasis.LEGITIMATE_INTERESTS, 1,
                direct_marketing=True, soft_opt_in=True)
    customer = Flags(customer_relationship=bought)
    assert decide(rule, state, customer, now).allowed is bought
    opted_out = Flags(customer_relationship=True,
                      objections=frozenset({rule.key}), compelling_grounds=frozenset({rule.key}))
    assert decide(rule, state, opted_out, now).reason is Reason.OBJECTED
    decision = decide(rule, state, flags, now)
    if decision.allowed:
        assert flags.customer_relationship and decision.reason is Reason.LEGAL_BASIS


@given(rules, states, times)
def test_a_suppressed_customer_is_denied_direct_marketing_and_nothing_else(
        rule: Rule, state: State | None, now: datetime) -> None:
    """R-ERASE-05: the suppression denies every direct-marketing purpose, on any legal basis
    and whatever consent is stored, and changes no answer for any other purpose."""
    suppressed = decide(rule, state, Flags(suppressed=True, customer_relationship=True), now)
    plain = decide(rule, state, Flags(customer_relationship=True), now)
    if rule.direct_marketing:
        assert (suppressed.allowed, suppressed.reason) == (False, Reason.SUPPRESSED)
    else:
        assert suppressed == plain
