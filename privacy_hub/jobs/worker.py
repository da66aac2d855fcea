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
from typing import TYPE_CHECKING, Any, cast

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import CursorResult, or_, select, update

from audit.clock import utcnow
from privacy_hub.db import transaction
from privacy_hub.jobs import inactivity, mail, outbox
from privacy_hub.jobs.backoff import backoff_delay
from privacy_hub.jobs.handler import ClaimedJob, JobCancelled, JobFailed
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


def _next_due_job(now: datetime) -> Any:
    return (select(OutboxJob)
            .where(OutboxJob.status == "pending", OutboxJob.next_attempt_at <= now,
                   or_(OutboxJob.locked_until.is_(None), OutboxJob.locked_until <= now))
            .order_by(OutboxJob.next_attempt_at)
            .limit(1)
            .with_for_update(skip_locked=True))


class Worker:
    """Claims and runs jobs one at a time. Several may run, in threads or processes."""

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

    # -- one job ----------------------------------------------------------------------
    def claim(self) -> ClaimedJob | None:
        """Lease the next due job and commit the lease; None when nothing is due."""
        lease = f"{self.name}:{secrets.token_hex(4)}"
        while True:
            now = self.clock()
            with transaction(self.hub.sessions) as session:
                job = session.scalars(_next_due_job(now)).first()
                if job is None:
                    return None
                interrupted = job.locked_until is not None
                if interrupted and job.attempts >= self.max_attempts:
                    # Its last attempt died with its worker: a job that kills workers
                    # must not kill them forever.
                    job.status, job.last_error = "dead", INTERRUPTED
                    job.next_attempt_at = job.locked_until = job.locked_by = None
                    log.warning("job %s (%s) is dead: %s", job.id, job.kind, INTERRUPTED)
                    continue
                job.attempts += 1
                job.locked_until, job.locked_by = now + self.lease, lease
                if interrupted:
                    job.last_error = INTERRUPTED
                return ClaimedJob(job.id, job.kind, job.attempts, lease, job.system_id,
                                  job.event_id, job.event_type, job.customer_id, job.payload_ct)

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
        with transaction(self.hub.sessions) as session:
            result = cast(CursorResult[Any], session.execute(
                update(OutboxJob)
                .where(OutboxJob.id == job.id, OutboxJob.locked_by == job.lease)
                .values(**values)
                .execution_options(synchronize_session=False)))
        if result.rowcount == 0:
            log.warning("job %s (%s): its lease ran out before the attempt ended; "
                        "the outcome (%s) was not recorded and it will run again",
                        job.id, job.kind, status)
        return str(values["status"])

    # -- loops --------------------------------------------------------------------------
    def run_once(self, stop: threading.Event | None = None, *, limit: int | None = None) -> int:
        """Run jobs until none is due (or ``limit`` ran, or ``stop`` is set); returns how many."""
        done = 0
        while (stop is None or not stop.is_set()) and (limit is None or done < limit):
            job = self.claim()
            if job is None:
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
