"""Engines and sessions: one session per request or job, one commit at its end.

SQLite is the embedded default. Its transactions are started with ``BEGIN IMMEDIATE``
so that a transaction which reads and then writes (every audited request does) takes
the write lock up front instead of failing with "database is locked" on upgrade.
PostgreSQL serialises the audit chain with a row lock instead. SQLite writers queue for
that write lock in privacy_hub/writer_lock.py, not in SQLite's busy handler.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, exc, insert
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool, QueuePool

from audit.prepared import insert_of
from privacy_hub.writer_lock import LockingConnection, WriterLock, writer_lock

#: PostgreSQL connections older than this are replaced at checkout (seconds)
POOL_RECYCLE = 1800


def make_engine(url: str, *, sqlite_synchronous: str = "NORMAL", pool_size: int = 5) -> Engine:
    """An engine for ``url`` with the hub's connection settings."""
    if url.startswith("sqlite"):
        kwargs: dict[str, Any] = {
            "connect_args": {"timeout": 30, "check_same_thread": False},
        }
        path = make_url(url).database
        memory = not path or path == ":memory:" or ":memory:" in url
        if memory:
            kwargs["poolclass"] = NullPool
        else:
            # Keep connections open: closing the last one checkpoints the WAL (~4 ms).
            kwargs.update(poolclass=QueuePool, pool_size=pool_size, max_overflow=20)
            kwargs["connect_args"]["factory"] = LockingConnection
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine, sqlite_synchronous,
                          None if memory or path is None else writer_lock(path))
        return engine
    # No pool_pre_ping: it costs a round trip on every checkout. A connection the server
    # dropped fails its request (answered 503, retry; privacy_hub/web/context.py) and SQLAlchemy
    # then replaces every pooled connection older than the failure.
    return create_engine(url, pool_size=pool_size, max_overflow=10, pool_recycle=POOL_RECYCLE)


def _configure_sqlite(engine: Engine, synchronous: str, lock: WriterLock | None) -> None:
    if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise ValueError(f"unknown SQLite synchronous mode: {synchronous}")
    durable_later = synchronous.upper() == "NORMAL"

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module; we issue BEGIN ourselves.
        dbapi_conn.isolation_level = None
        if isinstance(dbapi_conn, LockingConnection):
            dbapi_conn.writer_lock = lock
            # NORMAL: no fsync in COMMIT; the connection makes each write transaction
            # durable after it releases the writer lock (privacy_hub/wal_sync.py).
            dbapi_conn.wal_sync = lock.wal if lock is not None and durable_later else None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL: SQLite fsyncs the WAL in every COMMIT, holding the write lock; NORMAL with
        # the hub's fdatasync after it: both survive a power cut, not only a crash.
        cur.execute(f"PRAGMA synchronous={synchronous.upper()}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        # No memory map (SQLite's default): in WAL mode SQLite unmaps the whole file
        # whenever another connection has committed since this one last read (pager.c,
        # pagerBeginReadTransaction), and every page touched after that faults in again.
        # A read nearly always follows a commit (the check log alone commits every half
        # second per process): measured at 1,000,000 customers with a commit every half
        # second, a batch check's statement took 286-322 ms of CPU mapped against 150-170 ms
        # through the page cache (127-138 ms mapped with no writes at all).
        cur.execute("PRAGMA mmap_size=0")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Straight to the driver: SQLAlchemy's execution path costs more than the BEGIN.
        dbapi_conn = conn.connection.dbapi_connection
        try:
            # Read-only work (checks, verification) starts a deferred transaction: in WAL
            # mode it reads a snapshot without taking the write lock.
            if conn.get_execution_options().get(READ_ONLY):
                dbapi_conn.execute("BEGIN")
                return
            if isinstance(dbapi_conn, LockingConnection):
                dbapi_conn.take_writer_lock()
            try:
                dbapi_conn.execute("BEGIN IMMEDIATE")
            except BaseException:
                if isinstance(dbapi_conn, LockingConnection):
                    dbapi_conn.release_writer_lock()
                raise
        except sqlite3.Error as err:  # as SQLAlchemy reports driver errors
            raise exc.OperationalError("BEGIN", None, err) from err


READ_ONLY = "privacy_hub_read_only"


def read_only(engine: Engine) -> Engine:
    """The same engine, for transactions that only read (no write lock on SQLite).

    Writing through it fails: the audit entries of its sessions are chained apart from
    them (audit.Appender), which is right only when they changed nothing.
    """
    options: dict[str, Any] = {READ_ONLY: True}
    if engine.dialect.name == "postgresql":
        # Under READ COMMITTED every statement reads its own snapshot anyway, so a
        # read-only transaction buys nothing but its BEGIN and COMMIT round trips.
        options["isolation_level"] = "AUTOCOMMIT"
    ro = engine.execution_options(**options)
    event.listen(ro, "before_cursor_execute", _refuse_writes)
    return ro


class ReadOnlyViolation(Exception):
    """A write was attempted in a read-only transaction (a programming error)."""


def _refuse_writes(_conn: Any, _cursor: Any, statement: str, _params: Any, context: Any,
                   _executemany: bool) -> None:
    if context is not None and (context.isinsert or context.isupdate or context.isdelete):
        raise ReadOnlyViolation("a read-only session tried to write: " + statement.split(None, 1)[0])


# -- bulk inserts ------------------------------------------------------------------------

def insert_many(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]],
                fixed: Mapping[str, Any] | None = None) -> None:
    """INSERT ``rows`` (each with a value for every column not in ``fixed``, which gives
    the same values to every row) in one executemany.

    The same rows as ``conn.execute(insert(table), rows)``, at a fraction of its CPU:
    SQLAlchemy builds and converts every row's parameters one by one (about half of a
    bulk load's time); here each column's type conversion runs once per distinct value
    in a row (timestamps shared by a whole batch are converted once).
    """
    if not rows:
        return
    plan = insert_of(table).plan(conn.dialect)
    columns = [c.key for c in table.columns]
    names = list(plan.names) if plan.names is not None else columns
    if sorted(names) != sorted(columns):  # escaped bind names
        conn.execute(insert(table), [{**row, **(fixed or {})} for row in rows])
        return
    params: list[Any] = plan.rows(rows, names, fixed)
    if plan.names is None:
        params = [dict(zip(names, values, strict=True)) for values in params]
    conn.exec_driver_sql(plan.sql, params)


# -- sessions ----------------------------------------------------------------------------

def make_sessionmaker(
    engine: Engine, binds: Mapping[type[Any], Engine] | None = None
) -> sessionmaker[Session]:
    """A session factory; ``binds`` sends some packages' tables to other engines."""
    return sessionmaker(
        bind=engine,
        binds=dict(binds) if binds else None,
        expire_on_commit=False,
        autoflush=True,
    )


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work: commit when the block succeeds, roll back when it raises."""
    session = factory()
    try:
        yield session
        session.commit()
    finally:
        # On an error, close() rolls back. (Not rollback(): a read-only session's commit
        # can fail after its transaction has ended, when its audit entries could not be
        # committed (audit.Appender), and rollback() refuses that state; close() does not.)
        session.close()


# -- prebuilt statements through the driver (request hot paths) ---------------------------

@contextmanager
def driver_reader(engine: Engine) -> Iterator[tuple[Any, Any]]:
    """A driver connection for statements that only read, each its own snapshot.

    No BEGIN and no COMMIT: SQLite (whose module's transaction control is off) and
    PostgreSQL (in autocommit) run each statement as a transaction of its own, which for
    a single read is all the isolation it needs, and takes no write lock. The connection
    is one of IdleReaders' (no pool checkout and reset). Yields (cursor, dialect). A
    connection the server dropped is closed, and the error is raised as SQLAlchemy's with
    ``connection_invalidated`` set.
    """
    dialect = engine.dialect
    idle = IdleReaders.of(engine)
    driver = idle.take(engine)
    lost = False
    try:
        cursor = driver.cursor()
        try:
            yield cursor, dialect
        finally:
            cursor.close()
    except exc.DBAPIError as err:
        if err.orig is not None and dialect.is_disconnect(err.orig, driver, None):  # type: ignore[arg-type]
            err.connection_invalidated = lost = True
        raise
    except dialect.loaded_dbapi.Error as err:
        lost = dialect.is_disconnect(err, driver, None)
        raise exc.DBAPIError.instance(None, None, err, dialect.loaded_dbapi.Error,
                                      dialect=dialect, connection_invalidated=lost) from err
    finally:
        idle.give(driver, lost)


class IdleReaders:
    """Driver connections kept for single reads (driver_reader, the gate), apart from the
    engine's pool: a checkout and check-in with its reset cost about as much as a read.

    They only run single reads outside transactions, so they need no reset: taking one
    is a list pop. Made by the engine (its connect hooks run), detached from its pool,
    kept per process (never across a fork), closed when the engine is disposed; one the
    server dropped is closed, not kept.
    """

    KEEP = 16
    _by_engine: weakref.WeakKeyDictionary[Engine, IdleReaders] = weakref.WeakKeyDictionary()
    _guard = threading.Lock()

    def __init__(self, keep: bool) -> None:
        self.pid = os.getpid()
        self.keep = keep
        self.conns: list[Any] = []
        self.lock = threading.Lock()
        self.closed = False

    @classmethod
    def of(cls, engine: Engine) -> IdleReaders:
        base: Engine = getattr(engine, "_proxied", engine)  # an engine with options: its own
        idle = cls._by_engine.get(base)
        if idle is None or idle.pid != os.getpid():
            with cls._guard:
                idle = cls._by_engine.get(base)
                if idle is None or idle.pid != os.getpid():
                    # NullPool (SQLite in memory): every connection is a new database.
                    idle = cls._by_engine[base] = IdleReaders(
                        not isinstance(base.pool, NullPool))
                    event.listen(base, "engine_disposed", idle.close_all)
        return idle

    def take(self, engine: Engine) -> Any:
        with self.lock:
            if self.conns:
                return self.conns.pop()
        fairy = engine.raw_connection()
        conn = fairy.driver_connection
        fairy.detach()  # ours from now on: the pool neither counts nor resets it
        if engine.dialect.name == "postgresql":
            conn.autocommit = True  # type: ignore[union-attr]
        return conn

    def give(self, conn: Any, lost: bool) -> None:
        if not lost and self.keep and self.pid == os.getpid():
            with self.lock:
                if not self.closed and len(self.conns) < self.KEEP:
                    self.conns.append(conn)
                    return
        with contextlib.suppress(Exception):
            conn.close()

    def close_all(self, _engine: Any = None) -> None:
        with self.lock:
            conns, self.conns = self.conns, []
            mine = self.pid == os.getpid()
        for conn in conns if mine else ():
            with contextlib.suppress(Exception):
                conn.close()
