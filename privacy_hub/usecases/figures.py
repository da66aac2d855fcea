"""The figures a supervisory authority or a board asks for (Art. 5(2), 12(3) GDPR): consent
decisions per purpose over time, requests by type and status, how fast requests were
answered and whether on time, overdue requests now, webhook delivery failures per system,
entries on the suppression list now.

Counting happens in SQL (GROUP BY a calendar day in UTC, portable across SQLite and
PostgreSQL); the days are then bucketed into weeks or months here. Every figure is a count
or a duration: no customer id, no personal data.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.clock import utcnow
from consent import suppression
from consent.models import ConsentEvent, PurposeRow
from dsar.models import DataSubjectRequest
from dsar.workflow import FINAL, RequestStatus, RequestType
from privacy_hub.jobs.outbox import WEBHOOK, OutboxJob
from privacy_hub.models import System

#: period key -> (days back from today, bucket size)
PERIODS: dict[str, tuple[int, str]] = {"30d": (30, "week"), "90d": (90, "week"),
                                       "12m": (365, "month")}
DEFAULT_PERIOD = "90d"

REQUEST_TYPES: tuple[str, ...] = tuple(str(t) for t in RequestType)
REQUEST_STATUSES: tuple[str, ...] = tuple(str(s) for s in RequestStatus)
_FINAL = [str(s) for s in FINAL]

#: ledger event types counted as each kind of decision
_GRANTS = ("grant", "confirm")
_REFUSALS = ("refuse", "gpc_refusal")
_WITHDRAWALS = ("withdraw",)


@dataclass(frozen=True)
class Period:
    """The days the figures cover (UTC, both ends included) and their bucket size."""

    key: str
    first_day: date
    last_day: date
    bucket: str  # "week" (starting Monday) or "month"

    @property
    def since(self) -> datetime:
        return datetime.combine(self.first_day, time.min, tzinfo=UTC)

    def bucket_of(self, day: date) -> date:
        """The first day of the week or month ``day`` belongs to."""
        if self.bucket == "month":
            return day.replace(day=1)
        return day - timedelta(days=day.weekday())

    def buckets(self) -> list[date]:
        """Every bucket of the period in order, empty ones included."""
        out, current = [], self.bucket_of(self.first_day)
        while current <= self.last_day:
            out.append(current)
            if self.bucket == "month":
                current = (current.replace(day=28) + timedelta(days=4)).replace(day=1)
            else:
                current += timedelta(days=7)
        return out


def period(key: str | None, now: datetime | None = None) -> Period:
    """The period named ``key``; an unknown or missing key is the default (90 days)."""
    key = key if key in PERIODS else DEFAULT_PERIOD
    days, bucket = PERIODS[key]
    today = (now or utcnow()).astimezone(UTC).date()
    return Period(key, today - timedelta(days=days - 1), today, bucket)


@dataclass(frozen=True)
class ConsentCounts:
    grants: int = 0
    refusals: int = 0
    withdrawals: int = 0

    def __add__(self, other: ConsentCounts) -> ConsentCounts:
        return ConsentCounts(self.grants + other.grants, self.refusals + other.refusals,
                             self.withdrawals + other.withdrawals)


@dataclass(frozen=True)
class Timeliness:
    """Requests of one type completed in the period: how long they took, how many late."""

    type: str
    completed: int
    median_days: float | None
    on_time: int
    late: int


@dataclass(frozen=True)
class DeliveryFailures:
    #: failed at least once and still being retried (or delivered in the end)
    failed: int = 0
    #: gave up after the last attempt, waiting for someone to send it again
    dead: int = 0

    def __add__(self, other: DeliveryFailures) -> DeliveryFailures:
        return DeliveryFailures(self.failed + other.failed, self.dead + other.dead)


@dataclass
class Figures:
    period: Period
    buckets: list[date]
    #: purpose -> bucket -> counts (purposes with events in the period only)
    consents: dict[str, dict[date, ConsentCounts]] = field(default_factory=dict)
    #: purpose key -> its title (for every purpose in ``consents`` still registered)
    purpose_titles: dict[str, str] = field(default_factory=dict)
    #: requests received in the period
    requests_by_type: dict[str, int] = field(default_factory=dict)
    requests_by_status: dict[str, int] = field(default_factory=dict)
    timeliness: list[Timeliness] = field(default_factory=list)
    #: open requests past their due date now, whenever received
    overdue_now: int = 0
    #: system name -> bucket -> failures (systems with failures in the period only)
    webhook_failures: dict[str, dict[date, DeliveryFailures]] = field(default_factory=dict)
    #: entries on the suppression list now (R-ERASE-05), per reason: counted, never listed
    suppression: dict[str, int] = field(default_factory=dict)

    def consent_totals(self, purpose: str) -> ConsentCounts:
        return sum(self.consents[purpose].values(), ConsentCounts())

    def failure_totals(self, system: str) -> DeliveryFailures:
        return sum(self.webhook_failures[system].values(), DeliveryFailures())


def _utc_day(session: Session, column: Any) -> Any:
    """The calendar day (UTC) of a timestamp column, as SQL both dialects group by."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)  # SQLite stores naive UTC


def _as_date(value: date | str) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


def figures(session: Session, *, period_key: str | None = None,
            now: datetime | None = None) -> Figures:
    """Every figure of the console's figures page for the period named ``period_key``."""
    now = now or utcnow()
    p = period(period_key, now)
    out = Figures(period=p, buckets=p.buckets())
    _consents(session, p, out)
    _requests(session, p, out, now)
    _webhook_failures(session, p, out)
    out.suppression = suppression.counts(session)
    return out


def _consents(session: Session, p: Period, out: Figures) -> None:
    day = _utc_day(session, ConsentEvent.recorded_at)
    stmt = (select(ConsentEvent.purpose, day, ConsentEvent.event_type, ConsentEvent.status,
                   func.count())
            .where(ConsentEvent.recorded_at >= p.since,
                   ConsentEvent.event_type.in_(_GRANTS + _REFUSALS + _WITHDRAWALS))
            .group_by(ConsentEvent.purpose, day, ConsentEvent.event_type, ConsentEvent.status))
    counts: dict[str, dict[date, ConsentCounts]] = defaultdict(dict)
    for purpose, raw_day, event_type, status, n in session.execute(stmt):
        if event_type in _GRANTS:
            if status != "granted":  # a double opt-in counts once it is confirmed
                continue
            add = ConsentCounts(grants=n)
        elif event_type in _REFUSALS:
            add = ConsentCounts(refusals=n)
        else:
            add = ConsentCounts(withdrawals=n)
        bucket = p.bucket_of(_as_date(raw_day))
        per = counts[purpose]
        per[bucket] = per.get(bucket, ConsentCounts()) + add
    out.consents = {purpose: {b: counts[purpose].get(b, ConsentCounts()) for b in out.buckets}
                    for purpose in sorted(counts)}
    if counts:
        out.purpose_titles = {key: title for key, title in session.execute(
            select(PurposeRow.key, PurposeRow.title).where(PurposeRow.key.in_(list(counts))))}


def _requests(session: Session, p: Period, out: Figures, now: datetime) -> None:
    received = DataSubjectRequest.received_at >= p.since
    by_type = dict(session.execute(select(DataSubjectRequest.type, func.count())
                                   .where(received).group_by(DataSubjectRequest.type)).all())
    by_status = dict(session.execute(select(DataSubjectRequest.status, func.count())
                                     .where(received).group_by(DataSubjectRequest.status)).all())
    out.requests_by_type = {t: int(by_type.get(t, 0)) for t in REQUEST_TYPES}
    out.requests_by_status = {s: int(by_status.get(s, 0)) for s in REQUEST_STATUSES}

    # Completed in the period: durations are few (one row per request), the median is
    # computed here rather than in two dialects of SQL.
    done = session.execute(
        select(DataSubjectRequest.type, DataSubjectRequest.received_at,
               DataSubjectRequest.completed_at, DataSubjectRequest.due_at)
        .where(DataSubjectRequest.status == str(RequestStatus.COMPLETED),
               DataSubjectRequest.completed_at >= p.since)).all()
    durations: dict[str, list[float]] = defaultdict(list)
    late: dict[str, int] = defaultdict(int)
    for type_, received_at, completed_at, due_at in done:
        if completed_at is None:  # excluded by the query; for the type checker
            continue
        durations[type_].append((completed_at - received_at).total_seconds() / 86400)
        late[type_] += completed_at > due_at  # Art. 12(3): one month, or as extended
    out.timeliness = [
        Timeliness(type=t, completed=len(durations[t]),
                   median_days=round(statistics.median(durations[t]), 1) if durations[t] else None,
                   on_time=len(durations[t]) - late[t], late=late[t])
        for t in REQUEST_TYPES]

    out.overdue_now = int(session.scalar(
        select(func.count()).select_from(DataSubjectRequest)
        .where(DataSubjectRequest.status.not_in(_FINAL), DataSubjectRequest.due_at < now)) or 0)


def _webhook_failures(session: Session, p: Period, out: Figures) -> None:
    day = _utc_day(session, OutboxJob.created_at)
    # A delivery that failed at least once has a last error; "dead" ones gave up.
    stmt = (select(System.name, day, OutboxJob.status, func.count())
            .select_from(OutboxJob)
            .outerjoin(System, System.id == OutboxJob.system_id)
            .where(OutboxJob.kind == WEBHOOK, OutboxJob.created_at >= p.since,
                   (OutboxJob.status == "dead") | OutboxJob.last_error.is_not(None))
            .group_by(System.name, day, OutboxJob.status))
    counts: dict[str, dict[date, DeliveryFailures]] = defaultdict(dict)
    for name, raw_day, status, n in session.execute(stmt):
        add = DeliveryFailures(dead=n) if status == "dead" else DeliveryFailures(failed=n)
        bucket = p.bucket_of(_as_date(raw_day))
        per = counts[name or ""]
        per[bucket] = per.get(bucket, DeliveryFailures()) + add
    out.webhook_failures = {name: {b: counts[name].get(b, DeliveryFailures())
                                   for b in out.buckets} for name in sorted(counts)}
