"""Group commit: the works and audit entries of concurrent callers in shared transactions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from sqlalchemy import Connection
from sqlalchemy.orm import Session, sessionmaker

from audit import committing, head
from audit.chain import Unchained
from audit.errors import AuditNotInstalled
from audit.models import AuditHead

T = TypeVar("T")
#: a unit of work run in a group-committed transaction: given the connection and a dict
#: shared by the works of that transaction, it returns its result and its audit entries
Work = Callable[[Connection, dict[str, Any]], tuple[T, list[Unchained]]]


class _Job:
    __slots__ = ("appends_only", "error", "result", "work")

    def __init__(self, work: Work[Any], appends_only: bool = False) -> None:
        self.work = work
        self.appends_only = appends_only
        self.result: Any = None
        self.error: BaseException | None = None


class _Batch:
    def __init__(self, lock: threading.Lock) -> None:
        self.jobs: list[_Job] = []
        #: committed (or failed): the next batch may be written, this one may still sync
        self.written = False
        self.done = False
        #: its callers wait on it: woken when it is done, or (one) to write it
        self.cond = threading.Condition(lock)


class Appender:
    """Group commit: runs units of work of concurrent callers in write transactions of its
    own, one per batch, and chains their audit entries in that same transaction.

    Used for the entries of transactions that changed nothing (reads of personal data,
    ``append``) and for short writes that need nothing but the connection (``run``, e.g.
    creating a customer). A caller blocks until the transaction holding its work has
    committed, so an answer is never sent before its change and its entries are durable.
    Work arriving while a batch is being written waits and goes in the next one, so under
    load each commit (and each fsync, and each turn at the head's lock) carries many.
    If a batch fails, each of its works is run again in a transaction of its own, so one
    failing work fails only its own caller. One per process, for sessions of ``factory``
    (which must be installed).
    """

    #: longest a writer waits for announced callers (``upcoming``) to join its batch (s)
    GATHER_SECONDS = 0.001

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory
        self._conn: Connection | None = None
        self._lock = lock = threading.Lock()
        #: announced callers joined or gave up: wakes only a writer gathering them
        self._joined = threading.Condition(lock)
        self._open = _Batch(lock)
        self._writing = False
        self._upcoming = 0
        self._announced = threading.local()

    @contextmanager
    def upcoming(self) -> Iterator[None]:
        """Announce that this thread will call run() or append() within the block.

        A writer about to begin a batch waits a little (GATHER_SECONDS at most) for
        announced callers to join it rather than leave them for the next commit: under
        load, fewer and fuller commits (SQLite's write lock and the fsync are per commit).
        """
        before: int = getattr(self._announced, "count", 0)
        with self._lock:
            self._upcoming += 1
        self._announced.count = before + 1
        try:
            yield
        finally:
            left = self._announced.count - before  # not yet consumed by run()
            if left > 0:
                self._announced.count = before
                with self._lock:
                    self._upcoming -= left
                    self._joined.notify()

    def _gather(self) -> None:
        deadline = time.monotonic() + self.GATHER_SECONDS
        with self._lock:
            while self._upcoming > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._joined.wait(remaining)

    def append(self, items: list[Unchained]) -> None:
        """Chain ``items`` and return once they are committed (raise if that failed)."""
        self._run(_Job(lambda _conn, _shared: (None, items), appends_only=True))

    def run(self, work: Work[T]) -> T:
        """Run ``work`` in a group-committed transaction; its result once committed.

        ``work`` may run more than once (again alone when its batch failed), each time in
        a transaction that is then committed or rolled back whole; it must not keep state
        outside the database except in the shared dict.
        """
        return cast(T, self._run(_Job(work)))

    def _run(self, job: _Job) -> Any:
        announced: int = getattr(self._announced, "count", 0)
        with self._lock:
            if announced > 0:
                self._announced.count = announced - 1
                self._upcoming -= 1
                self._joined.notify()  # a writer may be gathering
            batch = self._open
            batch.jobs.append(job)
            while not batch.done:
                if not self._writing and not batch.written:  # this caller writes it
                    self._writing = True
                    break
                batch.cond.wait()
            else:
                if job.error is not None:
                    raise job.error
                return job.result
        sync: Callable[[], None] | None = None
        try:
            sync = self._write_batch(batch)
        finally:
            with self._lock:
                if self._open is batch:  # failed before closing it
                    self._open = _Batch(self._lock)
                batch.written = True
                self._writing = False
                self._open.cond.notify()  # one caller of the next: write it
            try:
                # Committed, not yet durable (SQLite under NORMAL): the next batch is
                # written while this one syncs; its callers are answered after.
                if sync is not None:
                    self._settle(batch, sync)
            finally:
                with self._lock:
                    batch.done = True
                    batch.cond.notify_all()  # its callers: done
        if job.error is not None:
            raise job.error
        return job.result

    @staticmethod
    def _settle(batch: _Batch, sync: Callable[[], None]) -> None:
        try:
            sync()
        except BaseException as exc:  # committed but maybe not durable: not acknowledged
            for job in batch.jobs:
                if job.error is None:
                    job.error = exc

    def _close(self, batch: _Batch) -> list[_Job]:
        """The batch's works from now on: later callers go into the next batch."""
        with self._lock:
            if self._open is batch:
                self._open = _Batch(self._lock)
            return list(batch.jobs)

    def _write_batch(self, batch: _Batch) -> Callable[[], None] | None:
        """Commit the batch; what makes it durable, if that is left to do (``_write``)."""
        jobs: list[_Job] = []
        try:
            if self._upcoming:
                self._gather()
            # The batch stays open while its writer waits for the database (SQLite's write
            # lock, held by another process's batch): whoever arrives meanwhile joins it.
            return self._write(lambda: self._close(batch),
                               lambda: all(job.appends_only for job in batch.jobs),
                               sync_later=True)
        except BaseException as exc:
            jobs = self._close(batch)
            if len(jobs) == 1:
                jobs[0].error = exc
                return None
            # One work may have failed them all: each again alone, to fail only its own.
            for job in jobs:
                try:
                    self._write(lambda job=job: [job])  # type: ignore[misc]
                except BaseException as own:
                    job.error = own
            return None

    def _write(self, jobs_now: Callable[[], list[_Job]],
               appends_only: Callable[[], bool] = lambda: False,
               sync_later: bool = False) -> Callable[[], None] | None:
        """One transaction for the works ``jobs_now()`` returns once it has begun.

        Returns when it has committed. With ``sync_later``, a connection that makes its
        commits durable after them (privacy_hub/writer_lock.py: SQLite's WAL is synced
        after the write lock is released) leaves that to the function returned, so that
        the caller can let the next batch begin first; otherwise the commit is durable.
        """
        # A plain connection, not a session: a batch needs nothing of the ORM.
        audited = committing.audited(self._factory.class_)
        if audited is None or audited.appender is not None:
            raise AuditNotInstalled("an Appender needs a factory installed without one")
        conn = self._conn
        if conn is None:
            with self._factory() as session:
                engine = session.get_bind(mapper=AuditHead).engine
            # Kept for the next batches (one writer at a time): no pool checkout each time.
            conn = self._conn = engine.connect()
        driver: Any = None
        try:
            with conn.begin():
                if sync_later and hasattr(conn.connection.driver_connection, "take_sync"):
                    driver = conn.connection.driver_connection
                    driver.sync_later = True
                # Begun: on SQLite, BEGIN IMMEDIATE has waited for the write lock.
                # PostgreSQL waits at the head's lock, taken in head.append after the works
                # (so other processes' batches are not held up by them), or here first
                # when the batch only appends entries: it then stays open while it waits.
                if conn.dialect.name == "postgresql" and appends_only():
                    head.lock(conn)
                jobs = jobs_now()
                shared: dict[str, Any] = {}
                entries: list[Unchained] = []
                for job in jobs:
                    job.result, items = job.work(conn, shared)
                    entries.extend(items)
                for finish in shared.pop(BEFORE_CHAIN, {}).values():
                    finish(conn)
                if entries:
                    head.append(conn, entries, audited.checkpoints)
        except BaseException:
            self._conn = None  # e.g. the server dropped it: the next batch connects anew
            conn.close()
            raise
        finally:
            if driver is not None:
                driver.sync_later = False
        return cast("Callable[[], None] | None", driver.take_sync()) if driver else None


#: key of the shared dict of a batch: {name: fn(connection)} run after every work and
#: before the chain (e.g. one multi-row insert for the rows the works queued)
BEFORE_CHAIN = "before_chain"
