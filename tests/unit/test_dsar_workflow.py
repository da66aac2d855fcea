"""Deadlines and the request state machine (R-DEAD-01, R-DEAD-02, R-DSAR-06, R-DSAR-07)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsar.deadlines import WEEKENDS_ONLY, WorkingDays, add_months, due_at, reminder_times
from dsar.workflow import (
    FINAL,
    TRANSITIONS,
    Action,
    RejectionGround,
    RequestStatus,
    Snapshot,
    TransitionRefused,
    extension,
    next_status,
)


def at(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, 9, 30, tzinfo=UTC)


#: Germany's public holidays of December 2026 (25 Dec is a Friday, 26 Dec a Saturday)
DE_CHRISTMAS_2026 = WorkingDays(frozenset({date(2026, 12, 25), date(2026, 12, 26)}), name="DE")


@pytest.mark.parametrize(("received", "due"), [
    (at(2025, 8, 5), at(2025, 9, 5)),        # same day number (a Friday)
    (at(2025, 1, 31), at(2025, 2, 28)),      # clamped to February's end (a Friday)
    (at(2028, 1, 31), at(2028, 2, 29)),      # leap year (a Tuesday)
    (at(2026, 3, 31), at(2026, 4, 30)),
    (at(2026, 12, 15), at(2027, 1, 15)),     # across the year
    (at(2024, 12, 31), at(2025, 1, 31)),     # 31 Dec -> 31 Jan of the next year (a Friday)
])
def test_one_calendar_month_clamped_to_month_end(received: datetime, due: datetime) -> None:
    """R-DEAD-01 / Art. 12(3): each of these falls on a working day, so it stays."""
    assert due_at(received, working_days=WEEKENDS_ONLY) == due


@pytest.mark.parametrize(("received", "due"), [
    (at(2026, 8, 5), at(2026, 9, 7)),        # 5 Sep 2026 is a Saturday -> Monday
    (at(2027, 1, 31), at(2027, 3, 1)),       # clamped to Sun 28 Feb 2027 -> Monday 1 Mar
    (at(2026, 10, 1), at(2026, 11, 2)),      # 1 Nov 2026 is a Sunday -> Monday
    (at(2025, 12, 31), at(2026, 2, 2)),      # 31 Dec -> Sat 31 Jan 2026 -> Monday 2 Feb
])
def test_a_deadline_on_a_weekend_moves_to_the_next_working_day(
        received: datetime, due: datetime) -> None:
    """R-DEAD-01, Reg. 1182/71 Art. 3(4): Saturday and Sunday are no working days, also
    without a holiday calendar; the time of day is kept."""
    moved = due_at(received, working_days=WEEKENDS_ONLY)
    assert moved == due and moved.time() == received.time()


def test_a_deadline_on_a_public_holiday_moves_past_it_and_the_weekend() -> None:
    """R-DEAD-01: received 25 Nov 2026, due Fri 25 Dec (a holiday in DE), Sat 26 Dec (a
    holiday and a Saturday), Sun 27 Dec: due Mon 28 Dec, at the time it was received."""
    received = datetime(2026, 11, 25, 16, 45, tzinfo=UTC)
    assert due_at(received, working_days=DE_CHRISTMAS_2026) == datetime(
        2026, 12, 28, 16, 45, tzinfo=UTC)
    # without Germany's holidays, Friday 25 Dec is a working day
    assert due_at(received, working_days=WEEKENDS_ONLY) == datetime(2026, 12, 25, 16, 45,
                                                                    tzinfo=UTC)


def test_germanys_real_holiday_calendar_moves_christmas_2026_to_the_28th() -> None:
    """R-DEAD-01 with PRIVACY_HUB_HOLIDAYS=DE, as the hub builds it from the holidays
    package."""
    from privacy_hub.holiday_calendar import working_days

    germany = working_days("DE")
    assert germany.name == "DE"
    assert due_at(at(2026, 11, 25), working_days=germany) == at(2026, 12, 28)
    # a regional holiday counts only in its region: Epiphany (6 Jan) in Bavaria
    assert due_at(at(2026, 12, 6), working_days=working_days("DE-BY")) == at(2027, 1, 7)
    assert due_at(at(2026, 12, 6), working_days=germany) == at(2027, 1, 6)


def test_extension_counts_from_receipt_clamps_and_lands_on_a_working_day() -> None:
    """API.md, R-DEAD-02: due_at = received_at + (1 + extension months), clamped and moved
    to a working day like the first deadline."""
    # 30 Nov 2026 + 3 months: clamped to Sunday 28 Feb 2027, moved to Monday 1 Mar
    assert due_at(at(2026, 11, 30), 2, working_days=WEEKENDS_ONLY) == at(2027, 3, 1)
    assert due_at(at(2027, 11, 29), 2, working_days=WEEKENDS_ONLY) == at(2028, 2, 29)
    # 25 Oct 2026 + 2 months: Friday 25 Dec, a holiday in Germany -> Monday 28 Dec
    assert due_at(at(2026, 10, 25), 1, working_days=DE_CHRISTMAS_2026) == at(2026, 12, 28)
    with pytest.raises(ValueError, match="two months"):
        due_at(at(2026, 1, 1), 3, working_days=WEEKENDS_ONLY)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                    timezones=st.just(UTC)), st.integers(0, 2))
def test_a_due_date_is_a_working_day_at_most_two_days_after_the_calendar_month(
        received: datetime, extension_months: int) -> None:
    """R-DEAD-01: never early, never on a weekend, later only by the weekend it skips."""
    month = add_months(received, 1 + extension_months)
    due = due_at(received, extension_months, working_days=WEEKENDS_ONLY)
    assert due.weekday() < 5 and due.time() == received.time()
    assert month <= due <= month + timedelta(days=2)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                    timezones=st.just(UTC)), st.integers(0, 24))
def test_add_months_is_never_early_and_keeps_the_time(when: datetime, months: int) -> None:
    later = add_months(when, months)
    assert (later.year - when.year) * 12 + later.month - when.month == months
    assert later.day <= when.day and later.time() == when.time()


def test_reminders_seven_days_before_and_when_overdue() -> None:
    due = at(2026, 12, 23)
    assert reminder_times(due, working_days=WEEKENDS_ONLY) == [at(2026, 12, 16), due]


def test_a_reminder_due_on_a_day_off_comes_the_working_day_before() -> None:
    """R-DEAD-03 with R-DEAD-01's calendar: a week before Fri 1 Jan 2027 is Fri 25 Dec, a
    holiday: the DPO hears on Thursday 24 Dec, so a full week stays."""
    due = at(2027, 1, 1)
    assert reminder_times(due, working_days=DE_CHRISTMAS_2026) == [at(2026, 12, 24), due]


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
    days = WEEKENDS_ONLY
    snap = Snapshot(RequestStatus.PROCESSING, at(2026, 11, 1), 0)
    assert extension(snap, 2, at(2026, 11, 20), working_days=days) == 2
    assert extension(Snapshot(snap.status, snap.received_at, 1), 1, at(2026, 11, 20),
                     working_days=days) == 2
    with pytest.raises(TransitionRefused, match="at most two months"):
        extension(Snapshot(snap.status, snap.received_at, 1), 2, at(2026, 11, 20),
                  working_days=days)
    with pytest.raises(TransitionRefused, match="before the original"):
        extension(snap, 1, at(2026, 12, 1, ), working_days=days)
    with pytest.raises(TransitionRefused):
        extension(snap, 3, at(2026, 11, 20), working_days=days)
    with pytest.raises(TransitionRefused):
        extension(Snapshot(RequestStatus.COMPLETED, snap.received_at, 0), 1, at(2026, 11, 2),
                  working_days=days)


def test_the_original_deadline_of_an_extension_is_the_moved_one() -> None:
    """R-DEAD-01 and R-DEAD-02: received 5 Aug 2026, the first deadline is Monday 7 Sep
    (5 Sep is a Saturday): an extension decided on Sunday 6 Sep is still in time."""
    snap = Snapshot(RequestStatus.PROCESSING, at(2026, 8, 5), 0)
    assert extension(snap, 1, at(2026, 9, 6), working_days=WEEKENDS_ONLY) == 1
    with pytest.raises(TransitionRefused, match="before the original"):
        extension(snap, 1, at(2026, 9, 7), working_days=WEEKENDS_ONLY)


def test_the_grounds_of_a_rejection_are_the_five_the_api_names() -> None:
    """R-DSAR-06, R-DSAR-07: Art. 12(5) (unfounded, excessive), 12(6), 11(2), or other."""
    assert [str(g) for g in RejectionGround] == [
        "manifestly_unfounded", "excessive", "identity_not_confirmed", "identity_not_found",
        "other"]
