"""The background worker: claim due outbox jobs, run them, retry with backoff.

A claim commits a lease (``locked_until``) before the job runs, so a worker that dies
mid-delivery leaves a job that is due again when the lease ends: delivery is at least
once and nothing is lost on a restart. PostgreSQL claims with ``FOR UPDATE SKIP LOCKED``,
so many workers share the queue; SQLite claims under its write lock (``BEGIN
IMMEDIATE``) and runs one worker per instance, behind ``<instance>/worker.lock``.

A failed attempt waits about ``base * 2**(attempt - 1)`` seconds (capped, jittered:
privacy_hub/jobs/backoff.py) before the next; after ``webhook_max_attempts`` the job is
dead until the DPO retries it. Each kind's handler is in privacy_hub/jobs/kinds.py;
privacy_hub/jobs/runners.py is where workers run.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, Table, or_, select, update

from audit.clock import utcnow
from privacy_hub.jobs import inactivity, mail, outbox
from privacy_hub.jobs.backoff import backoff_delay
from privacy_hub.jobs.handler import ClaimedJob, JobCancelled, JobFailed, group_committer
from privacy_hub.jobs.kinds import HANDLERS
from privacy_hub.jobs.outbox import OutboxJob
from privacy_hub.vault.errors import DecryptionError

if TYPE_CHECKING:
    from privacy_hub.hub import Hub

log = logging.getLogger(__name__)

#: an attempt never outlives half its lease, so a live worker keeps its jobs
ATTEMPT_TIMEOUT = 10.0
#: seconds between a running worker's housekeeping: a look whether the daily retention
#: pass is due (one conditional update), so it runs within the hour after it is
HOUSEKEEPING_INTERVAL = 3600.0
INTERRUPTED = "interrupted (the worker stopped during the attempt)"
T = TypeVar("T")


_OUTBOX = cast(Table, OutboxJob.__table__)
_c = _OUTBOX.c
#: how many due jobs one claim leases: one transaction (and under load one commit shared
#: with the requests', audit.Appender) for a batch of them, not two for each job
CLAIM_BATCH = 16


def _due_jobs(now: datetime, limit: int) -> Any:
    return (select(_c.id, _c.kind, _c.attempts, _c.locked_until, _c.system_id, _c.event_id,
                   _c.event_type, _c.customer_id, _c.payload_ct)
            .where(_c.status == "pending", _c.next_attempt_at <= now,
                   or_(_c.locked_until.is_(None), _c.locked_until <= now))
            .order_by(_c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True))


class Worker:
    """Claims jobs in small batches and runs them one at a time. Several may run, in
    threads or processes."""

    def __init__(self, hub: Hub, *, mailer: mail.Mailer | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        settings = hub.settings
        self.hub = hub
        self.clock = clock
        self.max_attempts = settings.webhook_max_attempts
        self.lease = timedelta(seconds=settings.worker_lease_seconds)
        self.timeout = min(ATTEMPT_TIMEOUT, settings.worker_lease_seconds / 2)
        self.mailer = mailer or mail.mailer_for(settings, timeout=self.timeout)
        self.name = f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(4)}"
        with hub.sessions() as session:
            self._aead = AESGCM(hub.keyring.hub_key(session, "app_secrets"))
        self._random = random.SystemRandom()

    def _write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in a committed write transaction: the process's group committer's
        when it has one (privacy_hub/jobs/handler.py), so that under load the worker's
        bookkeeping shares the requests' commits (and fsyncs), else one of its own."""
        appender = group_committer(self.hub)
        if appender is not None:
            return appender.run(lambda conn, _shared: (fn(conn), []))
        with self.hub.engine.begin() as conn:
            return fn(conn)

    # -- one job ----------------------------------------------------------------------
    def claim(self) -> ClaimedJob | None:
        """Lease the next due job and commit the lease; None when nothing is due."""
        claimed = self.claim_many(1)
        return claimed[0] if claimed else None

    def claim_many(self, limit: int = CLAIM_BATCH) -> list[ClaimedJob]:
        """Lease up to ``limit`` due jobs, oldest due first, and commit the leases (one
        transaction); [] when nothing is due. The lease is the same for all of them."""
        lease = f"{self.name}:{secrets.token_hex(4)}"
        while True:
            now = self.clock()
            claimed, dead = self._write(partial(self._lease, now=now, limit=limit, lease=lease))
            for job_id, kind in dead:
                log.warning("job %s (%s) is dead: %s", job_id, kind, INTERRUPTED)
            if claimed or not dead:
                return claimed

    def _lease(self, conn: Connection, now: datetime, limit: int, lease: str
               ) -> tuple[list[ClaimedJob], list[tuple[str, str]]]:
        claimed: list[ClaimedJob] = []
        interrupted: list[str] = []
        dead: list[tuple[str, str]] = []
        for row in conn.execute(_due_jobs(now, limit)).all():
            if row.locked_until is not None:  # its last attempt died with its worker
                if row.attempts >= self.max_attempts:
                    # A job that kills workers must not kill them forever.
                    dead.append((row.id, row.kind))
                    continue
                interrupted.append(row.id)
            claimed.append(ClaimedJob(row.id, row.kind, row.attempts + 1, lease, row.system_id,
                                      row.event_id, row.event_type, row.customer_id,
                                      row.payload_ct))
        if dead:
            conn.execute(update(_OUTBOX).where(_c.id.in_([d[0] for d in dead])).values(
                status="dead", last_error=INTERRUPTED, next_attempt_at=None, locked_until=None,
                locked_by=None))
        if claimed:
            conn.execute(update(_OUTBOX).where(_c.id.in_([j.id for j in claimed])).values(
                attempts=_c.attempts + 1, locked_until=now + self.lease, locked_by=lease))
        if interrupted:
            conn.execute(update(_OUTBOX).where(_c.id.in_(interrupted)).values(
                last_error=INTERRUPTED))
        return claimed, dead

    def _release(self, jobs: list[ClaimedJob]) -> None:
        """Give back leased jobs that were not run (the worker is stopping, or their lease
        would not last their attempt): due again at once, the attempt not counted."""
        if not jobs:
            return
        self._write(lambda conn: conn.execute(
            update(_OUTBOX)
            .where(_c.id.in_([j.id for j in jobs]), _c.locked_by == jobs[0].lease)
            .values(attempts=_c.attempts - 1, locked_until=None, locked_by=None)))

    def run_job(self, job: ClaimedJob) -> str:
        """Run a claimed job and record the outcome; returns the job's new status."""
        handler = HANDLERS.get(job.kind)
        status, error = "delivered", None
        try:
            if handler is None:
                raise JobFailed(f"no handler for job kind {job.kind!r}")
            if job.payload_ct is None:
                raise JobCancelled("the job has no payload")
            try:
                payload = outbox.open_payload(self._aead, job.id, job.payload_ct)
            except DecryptionError:
                raise JobFailed("the payload does not decrypt for this job") from None
            handler(self, job, payload)
        except JobFailed as exc:
            status, error = "failed", str(exc)
        except JobCancelled as exc:
            status, error = "cancelled", str(exc)
        except Exception as exc:
            # Only the type: an exception's text may quote data.
            log.error("job %s (%s): %s in its handler", job.id, job.kind, type(exc).__name__)
            status, error = "failed", f"internal error ({type(exc).__name__})"
        return self._record(job, status, error)

    def _record(self, job: ClaimedJob, status: str, error: str | None) -> str:
        now = self.clock()
        values: dict[str, Any] = {"locked_until": None, "locked_by": None}
        if error is not None:
            values["last_error"] = error[:200]
        if status == "failed" and job.attempts < self.max_attempts:
            delay = backoff_delay(job.attempts, base=self.hub.settings.webhook_backoff_base,
                                  cap=self.hub.settings.webhook_backoff_max,
                                  jitter=self._random.random())
            values.update(status="pending", next_attempt_at=now + timedelta(seconds=delay))
        elif status == "failed":
            status = "dead"
            values.update(status="dead", next_attempt_at=None)  # keeps its payload for a retry
            log.warning("job %s (%s) is dead after %d attempts: %s", job.id, job.kind,
                        job.attempts, error)
        else:
            values.update(status=status, next_attempt_at=None, payload_ct=None)
            if status == "delivered":
                values["delivered_at"] = now
        recorded = self._write(lambda conn: conn.execute(
            update(_OUTBOX).where(_c.id == job.id, _c.locked_by == job.lease)
            .values(**values)).rowcount)
        if recorded == 0:
            log.warning("job %s (%s): its lease ran out before the attempt ended; "
                        "the outcome (%s) was not recorded and it will run again",
                        job.id, job.kind, status)
        return str(values["status"])

    # -- loops --------------------------------------------------------------------------
    def run_once(self, stop: threading.Event | None = None, *, limit: int | None = None) -> int:
        """Run jobs until none is due (or ``limit`` ran, or ``stop`` is set); returns how many."""
        done = 0
        while (stop is None or not stop.is_set()) and (limit is None or done < limit):
            jobs = self.claim_many(CLAIM_BATCH if limit is None else min(CLAIM_BATCH,
                                                                          limit - done))
            if not jobs:
                break
            # An attempt must end before its lease does (another worker may then take
            # the job): none starts later than this.
            last_start = self.clock() + self.lease - timedelta(seconds=self.timeout)
            for i, job in enumerate(jobs):
                if (stop is not None and stop.is_set()) or self.clock() > last_start:
                    self._release(jobs[i:])
                    break
                self.run_job(job)
                done += 1
        return done

    def housekeeping(self) -> dict[str, int] | None:
        """Work no job asks for: the daily retention pass (R-RET-01, the proof of consent
        among it, R-CREC-06) when a day has passed since the last one began on any worker.
        Returns its counts per store, or None when it was not due or failed (logged;
        tried again next time)."""
        from privacy_hub.usecases.retention import run_if_due

        inactivity.housekeeping(self.hub, self.clock(), worker=self.name)  # R-RET-02, guarded
        try:
            return run_if_due(self.hub, self.clock())
        except Exception as exc:
            log.error("worker %s: %s in housekeeping; trying again later", self.name,
                      type(exc).__name__)
            return None

    def run(self, stop: threading.Event, *, poll_interval: float = 1.0) -> None:
        """Run jobs as they fall due until ``stop`` is set; the current job is finished.
        Housekeeping runs at the start and every HOUSEKEEPING_INTERVAL seconds."""
        log.info("worker %s started", self.name)
        housekeeping_at = time.monotonic()
        while not stop.is_set():
            if time.monotonic() >= housekeeping_at:
                housekeeping_at = time.monotonic() + HOUSEKEEPING_INTERVAL
                self.housekeeping()
            outbox.jobs_added.clear()
            try:
                self.run_once(stop)
            except Exception as exc:  # the database is away, ...: keep trying
                log.error("worker %s: %s while claiming or recording a job; retrying",
                          self.name, type(exc).__name__)
                stop.wait(min(30.0, max(poll_interval, 1.0) * 5))
                continue
            _wait(stop, poll_interval)
        log.info("worker %s stopped", self.name)


def _wait(stop: threading.Event, interval: float) -> None:
    """Sleep up to ``interval``; wake early for stop or for jobs committed in this process."""
    deadline = time.monotonic() + interval
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0 or outbox.jobs_added.wait(min(left, 0.25)):
            return
