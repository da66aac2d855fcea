"""Deadlines of data subject requests: one calendar month, extendable by two (Art. 12(3)).

A month after a date is the same day number in the next month, or that month's last
day when it has no such day (31 January -> 28 or 29 February). A deadline that falls on
a Saturday, a Sunday or a public holiday moves to the next working day, at the same time
of day (Reg. (EEC, Euratom) No 1182/71 Art. 3(4), applied in EDPB Guidelines 01/2022
§5.3). Whose public holidays count is configuration: the application passes them in as
a ``WorkingDays`` (PRIVACY_HUB_HOLIDAYS); this module reads no environment.

Days are the days of the stored timestamps, in UTC.
"""

from __future__ import annotations

import calendar
from collections.abc import Container
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

MAX_EXTENSION_MONTHS = 2
#: the DPO is reminded a week before the deadline, and on the day it passes (R-DEAD-03)
REMINDER_DAYS = (7, 0)
#: no run of days off is this long: a calendar that claims one is broken
_LONGEST_BREAK = 31


@dataclass(frozen=True)
class WorkingDays:
    """Monday to Friday, except the public holidays in ``holidays`` (any container of
    dates, e.g. a ``holidays`` package calendar for one country or region)."""

    holidays: Container[date] = field(default=frozenset(), compare=False, hash=False)
    #: what the calendar is, for people: "weekends only", "DE-BY"
    name: str = "weekends only"

    def is_working_day(self, day: date) -> bool:
        """Not a Saturday, not a Sunday, not a public holiday."""
        return day.weekday() < 5 and day not in self.holidays

    def on_or_after(self, when: datetime) -> datetime:
        """``when`` if it falls on a working day, else the same time of day on the next one."""
        return self._step(when, timedelta(days=1))

    def on_or_before(self, when: datetime) -> datetime:
        """``when`` if it falls on a working day, else the same time on the one before."""
        return self._step(when, timedelta(days=-1))

    def _step(self, when: datetime, step: timedelta) -> datetime:
        for _ in range(_LONGEST_BREAK):
            if self.is_working_day(when.date()):
                return when
            when += step
        raise ValueError(f"no working day within {_LONGEST_BREAK} days of {when.date()}")


#: the calendar when no PRIVACY_HUB_HOLIDAYS is configured
WEEKENDS_ONLY = WorkingDays()


def add_months(when: datetime, months: int) -> datetime:
    """``when`` plus whole calendar months, clamped to the end of the target month."""
    if months < 0:
        raise ValueError("months must not be negative")
    index = when.month - 1 + months
    year, month = when.year + index // 12, index % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day)


def due_at(received_at: datetime, extension_months: int = 0, *,
           working_days: WorkingDays) -> datetime:
    """Art. 12(3): one month from receipt, plus any extension (at most two months), moved
    to the next working day when it falls on a day off (Reg. 1182/71 Art. 3(4))."""
    if not 0 <= extension_months <= MAX_EXTENSION_MONTHS:
        raise ValueError("an extension is at most two months in total")
    return working_days.on_or_after(add_months(received_at, 1 + extension_months))


def reminder_times(due: datetime, *, working_days: WorkingDays) -> list[datetime]:
    """When the DPO is reminded: a week before the deadline (on the working day before,
    when that falls on a day off, so a full week stays), and when it passes."""
    return [working_days.on_or_before(due - timedelta(days=d)) if d else due
            for d in REMINDER_DAYS]
