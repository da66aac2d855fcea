"""The redaction hook for downstream reports (R-ACC-07; privacy_hub/rights/third_party.py)."""

from __future__ import annotations

from privacy_hub.rights.third_party import redact, redact_report


def test_marked_values_and_records_are_dropped_at_any_depth_and_counted() -> None:
    """R-ACC-07: every object with ``"third_party": true`` goes, with its key or list item."""
    report = {"orders": [{"id": "A-1", "gift_to": {"value": "x@example.net", "third_party": True}}],
              "notes": [{"text": "mine"}, {"text": "theirs", "third_party": True}],
              "referrer": {"third_party": True, "name": "Bob", "email": "bob@example.net"}}
    kept, dropped = redact(report)
    assert dropped == 3
    assert kept == {"orders": [{"id": "A-1"}], "notes": [{"text": "mine"}]}
    assert report["referrer"]["name"] == "Bob"  # the input is left as it was


def test_only_the_literal_true_marks_data_about_someone_else() -> None:
    """R-ACC-07: ``"third_party"`` with another value is an ordinary key of the subject's data."""
    report = {"a": {"third_party": False, "v": 1}, "b": {"third_party": "true", "v": 2},
              "c": {"third_party": 1, "v": 3}, "third_party": True}
    assert redact(report) == (report, 0)


def test_a_report_marked_as_a_whole_leaves_nothing() -> None:
    """R-ACC-07: a whole report about someone else is dropped; scalars pass through."""
    assert redact_report({"third_party": True, "tickets": [1, 2]}) == (None, 1)
    assert redact_report([{"third_party": True}, 3]) == ([3], 1)
    assert redact("text") == ("text", 0)
