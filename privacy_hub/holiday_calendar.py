"""PRIVACY_HUB_HOLIDAYS: whose public holidays move a request's deadline to the next
working day (Reg. 1182/71 Art. 3(4)), as the ``holidays`` package knows them.

The value is an ISO 3166 country, optionally with a subdivision (``DE``, ``DE-BY``,
``ES-PV``); unset, only Saturdays and Sundays are days off. dsar/ receives the result as
a plain ``WorkingDays`` and never reads configuration itself.
"""

from __future__ import annotations

import re
import threading
from datetime import date
from typing import TYPE_CHECKING

from dsar.deadlines import WEEKENDS_ONLY, WorkingDays

if TYPE_CHECKING:  # the package is imported only when a region is configured
    from holidays import HolidayBase

_REGION = re.compile(r"([A-Za-z]{2,3})(?:-([A-Za-z0-9]{1,6}))?")


class UnknownRegion(ValueError):
    """The value names no country or subdivision with a holiday calendar; says why."""


class RegionalHolidays:
    """A country's (or subdivision's) public holidays as a container of dates. The
    package fills in each year when it is first asked about it: a lock keeps that safe
    for the server's threads."""

    def __init__(self, calendar: HolidayBase) -> None:
        self._calendar = calendar
        self._lock = threading.Lock()

    def __contains__(self, day: object) -> bool:
        if not isinstance(day, date):
            return False
        with self._lock:
            return day in self._calendar


def _calendar(region: str) -> HolidayBase:
    import holidays

    match = _REGION.fullmatch(region.strip())
    if match is None:
        raise UnknownRegion(f"{region!r} is not a country code with an optional subdivision, "
                            "like DE, DE-BY or ES-PV")
    country, subdivision = match.group(1).upper(), match.group(2)
    if country not in holidays.list_supported_countries():
        raise UnknownRegion(f"{country!r} is not a country with a known holiday calendar "
                            "(an ISO 3166 code, like DE)")
    try:
        return holidays.country_holidays(country, subdiv=subdivision.upper() if subdivision
                                         else None)
    except NotImplementedError:
        raise UnknownRegion(f"{region.strip()!r}: {country} has no subdivision "
                            f"{subdivision!r} (e.g. DE-BY)") from None


def normalise_region(region: str) -> str:
    """``region`` in its canonical spelling (``de-by`` -> ``DE-BY``); UnknownRegion when
    no holiday calendar exists for it."""
    calendar = _calendar(region)
    subdivision = getattr(calendar, "subdiv", None)
    return f"{calendar.country}-{subdivision}" if subdivision else str(calendar.country)


def working_days(region: str | None) -> WorkingDays:
    """The days a deadline may fall on: weekdays that are not public holidays of
    ``region`` (every weekday when it is None)."""
    if not region:
        return WEEKENDS_ONLY
    return WorkingDays(RegionalHolidays(_calendar(region)), name=normalise_region(region))
