"""Hand-checked request bodies on the hot paths load exactly as their schemas do.

A fast path may decline a body (None: the schema then loads it, errors and all), but a
body it accepts must come out as the schema would load it, and the schema must accept it.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privacy_hub.api.consents import _DECISION, _fast_decision

_TEXT = st.one_of(
    st.sampled_from(["", "a", "x", "web_form", "app", "Web_Form", "call centre", "en", "de-DE",
                     "en-", "EN", "regular", "explicit", "x" * 40, "x" * 41, "y" * 100,
                     "y" * 101, "newsletter\n", "marketing.sms"]),
    st.text(max_size=12))
_VALUE = st.one_of(_TEXT, st.booleans(), st.none(), st.integers(-2, 2),
                   st.just({}), st.just([]))
_KEYS = st.sampled_from(["purpose", "granted", "source", "collection_method", "language",
                         "consent_type", "evidence", "notice_version", "collected_at",
                         "unknown"])


_BODIES = st.one_of(
    st.dictionaries(_KEYS, _VALUE, max_size=7),
    # Mostly valid: the two required fields, and any of the others.
    st.fixed_dictionaries(
        {"purpose": st.sampled_from(["marketing.sms", "x"]), "granted": st.booleans()},
        optional={"source": _TEXT, "collection_method": _VALUE, "language": _VALUE,
                  "consent_type": _VALUE, "evidence": st.just({}), "unknown": _VALUE}))


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(_BODIES)
def test_a_decision_the_fast_path_accepts_is_what_the_schema_loads(body: dict[str, Any]) -> None:
    fast = _fast_decision(body)
    try:
        loaded = _DECISION.load(body)
    except ma.ValidationError:
        assert fast is None  # an invalid body always reaches the schema, for its messages
        return
    if fast is not None:
        assert fast == loaded


def test_the_common_decision_bodies_take_the_fast_path() -> None:
    for body in ({"purpose": "marketing.sms", "granted": True},
                 {"purpose": "marketing.sms", "granted": False, "source": "shop",
                  "collection_method": "web_form", "language": "de-DE",
                  "consent_type": "explicit"}):
        assert _fast_decision(body) == _DECISION.load(body)


def test_bodies_with_evidence_or_a_notice_go_to_the_schema() -> None:
    assert _fast_decision({"purpose": "p", "granted": True, "evidence": {}}) is None
    assert _fast_decision({"purpose": "p", "granted": True, "notice_version": "v1"}) is None
    assert _fast_decision(["purpose"]) is None
