"""Outbox rows written by the works of a group-committed transaction (audit.Appender.run):
what ``outbox.enqueue`` and the outbox's commit participant do for a session, on the
batch's connection. The rows of all the batch's works go in one insert just before the
audit chain; ``jobs_written()`` wakes an in-process worker once the work has committed
(not before: a woken worker takes the write lock).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert
from sqlalchemy.orm import Session, sessionmaker

from audit.appender import BEFORE_CHAIN
from audit.clock import utcnow
from audit.prepared import Prepared, driver_cursor
from consent.domain_events import DomainEvent
from privacy_hub.jobs.outbox import (
    Job,
    OutboxError,
    OutboxJob,
    _aead,
    _row,
    _rows_for,
    _Subscriber,
    _subscribers,
    is_webhook_type,
    jobs_added,
)

_BATCH_ROWS = "outbox.rows"
_INSERT_JOB_RAW = Prepared(insert(OutboxJob))
_BATCH_SUBSCRIBERS = "outbox.subscribers"


def write_events(factory: sessionmaker[Session], conn: Connection, shared: dict[str, Any],
                 queued: list[DomainEvent]) -> bool:
    """The outbox rows of ``queued``, for a work of a group-committed transaction
    (audit.Appender.run on sessions of ``factory``, which must be installed here): as
    ``_Outbox.settle`` does for a session, in the same transaction as the work. The
    subscribers are read once per transaction, inside it (so a system registered before
    it began gets its events), and the rows of all its works go in one insert just before
    the audit chain. True if it queued rows: then call ``jobs_written()`` once the work
    has committed (not otherwise: a woken in-process worker takes the write lock).
    """
    aead = _aead(factory.class_)
    now = utcnow()
    wrote = False
    rows = _batch_rows(shared)
    for ev in queued:
        subscribers: list[_Subscriber] = []
        if is_webhook_type(ev.type):
            if _BATCH_SUBSCRIBERS not in shared:
                shared[_BATCH_SUBSCRIBERS] = _subscribers(conn)
            subscribers = shared[_BATCH_SUBSCRIBERS]
        new = _rows_for(aead, ev, now, subscribers, (driver_cursor(conn), conn.dialect))
        rows.extend(new)
        wrote = wrote or bool(new)
    return wrote


def queue_on(factory: sessionmaker[Session], conn: Connection, shared: dict[str, Any],
             jobs: Sequence[Job]) -> bool:
    """``jobs`` for a work of a group-committed transaction (audit.Appender.run on sessions
    of ``factory``), as ``enqueue`` would queue them in a session's: written with the
    batch's other outbox rows in one insert before the audit chain. True if it queued
    any: then call ``jobs_written()`` once the work has committed."""
    aead, now = _aead(factory.class_), utcnow()
    for job in jobs:
        if not 0 < len(job.kind) <= 32:
            raise OutboxError("a job kind is 1 to 32 characters")
    _batch_rows(shared).extend(_row(aead, job.kind, job.payload, now=now, run_at=job.run_at,
                                    customer_id=job.customer_id) for job in jobs)
    return bool(jobs)


def _batch_rows(shared: dict[str, Any]) -> list[dict[str, Any]]:
    """The outbox rows of a group-committed transaction, inserted before its chain."""
    rows: list[dict[str, Any]] | None = shared.get(_BATCH_ROWS)
    if rows is None:
        rows = shared[_BATCH_ROWS] = []

        def finish(c: Connection) -> None:
            if rows:
                cursor = driver_cursor(c)
                _INSERT_JOB_RAW.executemany(cursor, c.dialect, rows)

        shared.setdefault(BEFORE_CHAIN, {})["outbox"] = finish
    return rows


def jobs_written() -> None:
    """Wake an in-process worker after a group-committed transaction wrote jobs."""
    jobs_added.set()


