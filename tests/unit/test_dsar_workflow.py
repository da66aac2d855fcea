"""Deadlines and the request state machine (R-DEAD-01, R-DEAD-02, R-DSAR-07)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsar.deadlines import add_months, due_at, reminder_times
from dsar.workflow import (
    FINAL,
    TRANSITIONS,
    Action,
    RequestStatus,
    Snapshot,
    TransitionRefused,
    extension,
    next_status,
)


def at(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(("received", "due"), [
    (at(2026, 8, 5), at(2026, 9, 5)),        # same day number
    (at(2027, 1, 31), at(2027, 2, 28)),      # clamped to February's end
    (at(2028, 1, 31), at(2028, 2, 29)),      # leap year
    (at(2026, 3, 31), at(2026, 4, 30)),
    (at(2026, 12, 15), at(2027, 1, 15)),     # across the year
])
def test_one_calendar_month_clamped_to_month_end(received: datetime, due: datetime) -> None:
    """R-DEAD-01 / Art. 12(3)."""
    assert due_at(received) == due


def test_extension_counts_from_receipt_and_clamps() -> None:
    """API.md: due_at = received_at + (1 + extension months), clamped like the first."""
    assert due_at(at(2026, 11, 30), 2) == at(2027, 2, 28)
    assert due_at(at(2027, 11, 29), 2) == at(2028, 2, 29)
    with pytest.raises(ValueError, match="two months"):
        due_at(at(2026, 1, 1), 3)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                    timezones=st.just(UTC)), st.integers(0, 24))
def test_add_months_is_never_early_and_keeps_the_time(when: datetime, months: int) -> None:
    later = add_months(when, months)
    assert (later.year - when.year) * 12 + later.month - when.month == months
    assert later.day <= when.day and later.time() == when.time()


def test_reminders_seven_days_before_and_when_overdue() -> None:
    due = at(2026, 12, 23)
    assert reminder_times(due) == [at(2026, 12, 16), due]


def test_happy_path_and_final_states() -> None:
    s = RequestStatus
    snap = lambda status: Snapshot(status, at(2026, 11, 1), 0)  # noqa: E731
    assert next_status(snap(s.PENDING_VERIFICATION), Action.VERIFY) is s.VERIFIED
    assert next_status(snap(s.VERIFIED), Action.START) is s.PROCESSING
    assert next_status(snap(s.PROCESSING), Action.COMPLETE) is s.COMPLETED
    for final in FINAL:
        for action in Action:
            with pytest.raises(TransitionRefused):
                next_status(snap(final), action, reason="r")


def test_reject_and_cancel_from_every_open_state_but_reject_needs_a_reason() -> None:
    """R-DSAR-07: no refusal without a reason."""
    for status in RequestStatus:
        if status in FINAL:
            continue
        snap = Snapshot(status, at(2026, 11, 1), 0)
        assert next_status(snap, Action.CANCEL) is RequestStatus.CANCELLED
        assert next_status(snap, Action.REJECT, reason="manifestly unfounded") is RequestStatus.REJECTED
        with pytest.raises(TransitionRefused, match="reason"):
            next_status(snap, Action.REJECT, reason="  ")


def test_no_transition_skips_verification() -> None:
    assert (RequestStatus.PENDING_VERIFICATION, Action.START) not in TRANSITIONS
    assert (RequestStatus.PENDING_VERIFICATION, Action.COMPLETE) not in TRANSITIONS
    assert (RequestStatus.VERIFIED, Action.COMPLETE) not in TRANSITIONS


def test_extension_rules() -> None:
    """R-DEAD-02: at most two months in total, only before the original deadline."""
    snap = Snapshot(RequestStatus.PROCESSING, at(2026, 11, 1), 0)
    assert extension(snap, 2, at(2026, 11, 20)) == 2
    assert extension(Snapshot(snap.status, snap.received_at, 1), 1, at(2026, 11, 20)) == 2
    with pytest.raises(TransitionRefused, match="at most two months"):
        extension(Snapshot(snap.status, snap.received_at, 1), 2, at(2026, 11, 20))
    with pytest.raises(TransitionRefused, match="before the original"):
        extension(snap, 1, at(2026, 12, 1, ))
    with pytest.raises(TransitionRefused):
        extension(snap, 3, at(2026, 11, 20))
    with pytest.raises(TransitionRefused):
        extension(Snapshot(RequestStatus.COMPLETED, snap.received_at, 0), 1, at(2026, 11, 2))
