"""Deadlines of data subject requests: one calendar month, extendable by two (Art. 12(3)).

A month after a date is the same day number in the next month, or that month's last
day when it has no such day (31 January -> 28 or 29 February).
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta

MAX_EXTENSION_MONTHS = 2
#: the DPO is reminded a week before the deadline, and on the day it passes (R-DEAD-03)
REMINDER_DAYS = (7, 0)


def add_months(when: datetime, months: int) -> datetime:
    """``when`` plus whole calendar months, clamped to the end of the target month."""
    if months < 0:
        raise ValueError("months must not be negative")
    index = when.month - 1 + months
    year, month = when.year + index // 12, index % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day)


def due_at(received_at: datetime, extension_months: int = 0) -> datetime:
    """Art. 12(3): one month from receipt, plus any extension (at most two months)."""
    if not 0 <= extension_months <= MAX_EXTENSION_MONTHS:
        raise ValueError("an extension is at most two months in total")
    return add_months(received_at, 1 + extension_months)


def reminder_times(due: datetime) -> list[datetime]:
    """When the DPO is reminded: 7 days before the deadline, and when it passes."""
    return [due - timedelta(days=d) for d in REMINDER_DAYS]
