"""The background worker: claim due outbox jobs, run them, retry with backoff.

A claim commits a lease (``locked_until``) before the job runs, so a worker that dies
mid-delivery leaves a job that is due again when the lease ends: delivery is at least
once and nothing is lost on a restart. PostgreSQL claims with ``FOR UPDATE SKIP LOCKED``,
so many workers share the queue; SQLite claims under its write lock (``BEGIN
IMMEDIATE``) and runs one worker per instance, behind ``<instance>/worker.lock``.

A failed attempt waits about ``base * 2**(attempt - 1)`` seconds (capped, jittered)
before the next; after ``webhook_max_attempts`` the job is dead until the DPO retries it.
"""

from __future__ import annotations

import fcntl
import http.client
import logging
import os
import random
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import CursorResult, or_, select, update

import audit
from audit.clock import utcnow
from privacy_hub.db import transaction
from privacy_hub.jobs import mail, outbox, webhooks
from privacy_hub.jobs.outbox import OutboxJob
from privacy_hub.models import System
from privacy_hub.vault.errors import CustomerNotFound, DecryptionError, KeyDestroyed

if TYPE_CHECKING:
    from privacy_hub.hub import Hub

log = logging.getLogger(__name__)

LOCK_FILE = "worker.lock"
#: an attempt never outlives half its lease, so a live worker keeps its jobs
ATTEMPT_TIMEOUT = 10.0
MAILER_ACTOR = audit.Actor("job", "mailer")
INTERRUPTED = "interrupted (the worker stopped during the attempt)"
_MAX_RESPONSE = 64 * 1024


class JobFailed(Exception):
    """The attempt failed; retry later. The message becomes ``last_error``: no personal data."""


class JobCancelled(Exception):
    """The job can never succeed or is no longer wanted (e.g. its recipient was erased)."""


@dataclass(frozen=True)
class ClaimedJob:
    id: str
    kind: str
    #: including this one
    attempts: int
    lease: str
    system_id: str | None
    event_id: str | None
    event_type: str | None
    customer_id: str | None
    payload_ct: bytes | None


Handler = Callable[["Worker", ClaimedJob, dict[str, Any]], None]
_HANDLERS: dict[str, Handler] = {}


def handles(kind: str) -> Callable[[Handler], Handler]:
    """Register the function that runs jobs of ``kind`` (raise JobFailed or JobCancelled)."""

    def register(fn: Handler) -> Handler:
        _HANDLERS[kind] = fn
        return fn

    return register


def backoff_delay(attempts: int, *, base: float, cap: float, jitter: float) -> float:
    """Seconds to wait after ``attempts`` failed attempts; ``jitter`` in [0, 1) picks a
    point between half and all of ``base * 2**(attempts - 1)`` (at most ``cap``)."""
    delay = min(cap, base * 2.0 ** min(max(attempts - 1, 0), 60))
    return delay * (0.5 + jitter / 2)


def _due(now: datetime) -> Any:
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
                job = session.scalars(_due(now)).first()
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
        handler = _HANDLERS.get(job.kind)
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

    def run(self, stop: threading.Event, *, poll_interval: float = 1.0) -> None:
        """Run jobs as they fall due until ``stop`` is set; the current job is finished."""
        log.info("worker %s started", self.name)
        while not stop.is_set():
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

    # -- what handlers need ---------------------------------------------------------------
    def customer_email(self, customer_id: str) -> str:
        """Decrypt a customer's address to send them a mail; the read is audited."""
        vault = self.hub.vault
        with transaction(self.hub.sessions) as session:
            try:
                row = vault.get_row(session, customer_id)
                if row.status == "erased":
                    raise JobCancelled("the customer was erased")
                profile = vault.read(session, customer_id, actor=MAILER_ACTOR, only=["email"])
            except CustomerNotFound:
                raise JobCancelled("no such customer") from None
            except KeyDestroyed:
                raise JobCancelled("the customer was erased") from None
        email = profile.get("email")
        if not email:
            raise JobCancelled("the customer has no email address")
        return str(email)


def _wait(stop: threading.Event, interval: float) -> None:
    """Sleep up to ``interval``; wake early for stop or for jobs committed in this process."""
    deadline = time.monotonic() + interval
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0 or outbox.jobs_added.wait(min(left, 0.25)):
            return


# -- the job kinds ------------------------------------------------------------------------

class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> None:
        return None  # a redirect is an answer ("HTTP 302"), not a delivery


_OPENER = urllib.request.build_opener(_NoRedirects)


def _describe(reason: object) -> str:
    """A network error in words that carry no data: for ``last_error`` and logs."""
    if isinstance(reason, TimeoutError):
        return "timeout"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, ConnectionResetError):
        return "connection reset"
    if isinstance(reason, ssl.SSLCertVerificationError):
        return "TLS certificate not trusted"
    if isinstance(reason, ssl.SSLError):
        return "TLS error"
    if isinstance(reason, socket.gaierror):
        return "host name not found"
    if isinstance(reason, OSError):
        return f"connection error ({type(reason).__name__})"
    return "connection error"


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float) -> int:
    """POST ``body``; return the 2xx status or raise JobFailed saying what went wrong."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise JobCancelled("the webhook URL is not http(s)")
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - scheme checked above
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(_MAX_RESPONSE)
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise JobFailed(f"HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise JobFailed(_describe(exc.reason)) from None
    except http.client.HTTPException as exc:
        raise JobFailed(f"invalid HTTP response ({type(exc).__name__})") from None
    except OSError as exc:
        raise JobFailed(_describe(exc)) from None
    if not 200 <= status < 300:
        raise JobFailed(f"HTTP {status}")
    return status


@handles(outbox.WEBHOOK)
def deliver_webhook(worker: Worker, job: ClaimedJob, payload: dict[str, Any]) -> None:
    """POST the signed event to its system's webhook URL."""
    with worker.hub.read_sessions() as session:
        system = session.get(System, job.system_id) if job.system_id else None
        if system is None:
            raise JobCancelled("the system was removed")
        if system.disabled_at is not None:
            raise JobCancelled("the system is disabled")
        if not system.webhook_url:
            raise JobCancelled("the system has no webhook URL")
        url, secret = system.webhook_url, worker.hub.systems.webhook_secret(system)
    # The session is closed: no transaction is held open while posting.
    event_id = job.event_id or job.id
    body = webhooks.body(event_id, payload["type"], payload["created_at"], payload["data"])
    headers = webhooks.headers(secret, body, event_id, timestamp=int(time.time()))
    post(url, body, headers, timeout=worker.timeout)


@handles(outbox.MAIL)
def send_mail(worker: Worker, job: ClaimedJob, payload: dict[str, Any]) -> None:
    """Compose the mail; the customer's address is decrypted only now, and the read audited."""
    customer_id = payload.get("customer_id")
    to = worker.customer_email(customer_id) if customer_id else payload.get("to_staff")
    if not to:
        raise JobCancelled("the mail has no recipient")
    settings = worker.hub.settings
    context = {**payload.get("data", {}), **payload.get("secrets", {}),
               "base_url": settings.base_url}
    composed = mail.compose(payload["template"], to=to, sender=settings.mail_from,
                            context=context)
    try:
        worker.mailer.send(composed, job_id=job.id)
    except mail.MailError as exc:
        raise JobFailed(str(exc)) from None


# -- where workers run ----------------------------------------------------------------------

def acquire_instance_lock(path: Path, stop: threading.Event, *,
                          on_wait: Callable[[], None] | None = None) -> int | None:
    """Wait for the exclusive lock on ``path``; the open descriptor holds it (None: stopped).

    The lock goes with the process, so a killed worker's successor takes over at once.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    waited = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if not waited and on_wait is not None:
                on_wait()
            waited = True
        if stop.wait(0.5):
            os.close(fd)
            return None


class BackgroundWorker:
    """The in-process worker of ``privacy-hub serve``: a daemon thread in each server
    process waits for ``<instance>/worker.lock``, so one loop runs per instance and a
    restarted process takes over."""

    def __init__(self, hub: Hub, *, poll_interval: float = 1.0) -> None:
        self.hub = hub
        self.poll_interval = poll_interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="privacy-hub-worker",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _main(self) -> None:
        path = self.hub.settings.instance_path / LOCK_FILE
        try:
            fd = acquire_instance_lock(path, self._stop)
        except OSError as exc:
            log.error("background worker not started: cannot lock %s (%s)", path,
                      type(exc).__name__)
            return
        if fd is None:
            return
        try:
            log.info("this process runs the instance's background worker")
            Worker(self.hub).run(self._stop, poll_interval=self.poll_interval)
        except Exception as exc:
            log.error("background worker stopped: %s", type(exc).__name__)
        finally:
            os.close(fd)


def configure_logging() -> None:
    """Log INFO and up to standard error, unless the program configured logging itself
    (the outbox folder's links are meant to be seen in the server log)."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s")


def run_cli(hub: Hub, *, once: bool, poll_interval: float,
            echo: Callable[[str], None]) -> int:
    """``privacy-hub worker``: SIGTERM or SIGINT finish the current job, then exit."""
    configure_logging()
    stop = threading.Event()

    def _on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    fd: int | None = None
    try:
        if hub.settings.embedded:
            # SQLite: one worker per instance, the same lock `serve`'s worker takes.
            path = hub.settings.instance_path / LOCK_FILE
            fd = acquire_instance_lock(path, stop, on_wait=lambda: echo(
                f"waiting for {path}: another worker runs for this instance"))
            if fd is None:
                return 0
        worker = Worker(hub)
        if once:
            echo(f"{worker.run_once(stop)} jobs run")
        else:
            echo(f"worker {worker.name} running (SIGTERM finishes the current job and exits)")
            worker.run(stop, poll_interval=poll_interval)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if fd is not None:
            os.close(fd)


# Handlers of other job kinds register themselves on import.
from privacy_hub.jobs import retention  # noqa: E402, F401
