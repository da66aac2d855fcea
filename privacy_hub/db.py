"""Engines and sessions: one session per request or job, one commit at its end.

SQLite is the embedded default. Its transactions are started with ``BEGIN IMMEDIATE``
so that a transaction which reads and then writes (every audited request does) takes
the write lock up front instead of failing with "database is locked" on upgrade.
PostgreSQL serialises the audit chain with a row lock instead.

SQLite writers queue for that write lock here, not in SQLite: a thread takes this
process's lock for the database file and then an exclusive ``flock`` on
``<database>-writer.lock`` (other processes), both released as soon as the transaction
commits or rolls back. Waiters sleep in the kernel and wake the moment the lock is free,
where SQLite's busy handler would sleep and poll (1 ms, then up to 100 ms: seconds of
p99 under load). SQLite's own busy timeout stays as the backstop for processes that do
not take the lock file (e.g. the sqlite3 shell).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, LargeBinary, Table, create_engine, event, exc, insert
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool, QueuePool

from audit.log import Prepared

__all__ = ["Prepared"]

#: seconds a SQLite writer waits for another thread of its process before giving up, as
#: SQLite's own busy timeout does ("database is locked")
SQLITE_LOCK_TIMEOUT = 30.0
#: PostgreSQL connections older than this are replaced at checkout (seconds)
POOL_RECYCLE = 1800


def make_engine(url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 5) -> Engine:
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
            kwargs["connect_args"]["factory"] = _LockingConnection
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine, sqlite_synchronous,
                          None if memory or path is None else _writer_lock(path))
        return engine
    # No pool_pre_ping: it costs a round trip on every checkout. A connection the server
    # dropped fails its request (answered 503, retry; privacy_hub/web/context.py) and SQLAlchemy
    # then replaces every pooled connection older than the failure.
    return create_engine(url, pool_size=pool_size, max_overflow=10, pool_recycle=POOL_RECYCLE)


def _configure_sqlite(engine: Engine, synchronous: str, lock: _WriterLock | None) -> None:
    if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise ValueError(f"unknown SQLite synchronous mode: {synchronous}")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module; we issue BEGIN ourselves.
        dbapi_conn.isolation_level = None
        if isinstance(dbapi_conn, _LockingConnection):
            dbapi_conn.writer_lock = lock
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL: an acknowledged commit survives a power cut, not only a process crash.
        cur.execute(f"PRAGMA synchronous={synchronous.upper()}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        # Reads through a memory map of the file instead of read() calls into SQLite's
        # page cache: about a quarter less CPU for large scans (audiences, batches, import).
        cur.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
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
            if isinstance(dbapi_conn, _LockingConnection):
                dbapi_conn.take_writer_lock()
            try:
                dbapi_conn.execute("BEGIN IMMEDIATE")
            except BaseException:
                if isinstance(dbapi_conn, _LockingConnection):
                    dbapi_conn.release_writer_lock()
                raise
        except sqlite3.Error as err:  # as SQLAlchemy reports driver errors
            raise exc.OperationalError("BEGIN", None, err) from err


READ_ONLY = "privacy_hub_read_only"
#: how much of a SQLite database file each connection maps into memory (virtual memory,
#: shared with the OS page cache: not a cost in RSS beyond the pages touched)
SQLITE_MMAP_BYTES = 1 << 30


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


# -- SQLite: one writer at a time, queued without polling ---------------------------------

class _Held(threading.local):
    count = 0


#: how many writer locks the current thread holds
_held = _Held()


class _WriterLock:
    """Exclusive right to write one SQLite database: a thread lock, then a file lock."""

    def __init__(self, database: str) -> None:
        self.path = database + "-writer.lock"
        self._local = threading.Lock()
        self._fd: int | None = None

    def acquire(self, timeout: float = SQLITE_LOCK_TIMEOUT) -> None:
        if not self._local.acquire(timeout=timeout):
            raise sqlite3.OperationalError("database is locked (waited for this process's "
                                           "other writers)")
        try:
            if _held.count:
                # Holding another database's lock (e.g. a key store of its own): waiting
                # without end could deadlock with a process taking them the other way
                # round, so give up after the timeout, as SQLite's busy handler would.
                self._flock_within(timeout)
            else:
                # Blocks in the kernel, the GIL released, until the other process's
                # writer is done; the kernel drops the lock of a process that dies.
                fcntl.flock(self._file(), fcntl.LOCK_EX)
        except BaseException:
            self._local.release()
            raise
        _held.count += 1

    def _flock_within(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while True:
            try:
                fcntl.flock(self._file(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise sqlite3.OperationalError("database is locked") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    def release(self) -> None:
        _held.count = max(0, _held.count - 1)  # a pool may return a connection elsewhere
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._local.release()

    def _file(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return self._fd

    def _after_fork(self) -> None:
        # flock belongs to the open file, which a child shares with its parent: the child
        # opens its own. A thread lock held by a parent's thread stays held in a child.
        if self._fd is not None:
            os.close(self._fd)  # the parent's copy keeps the parent's lock
            self._fd = None
        self._local = threading.Lock()


_LOCKS: weakref.WeakValueDictionary[str, _WriterLock] = weakref.WeakValueDictionary()
_LOCKS_GUARD = threading.Lock()


def _writer_lock(database: str) -> _WriterLock:
    """The process-wide lock of one database file (every engine on it shares it)."""
    key = os.path.realpath(database)
    with _LOCKS_GUARD:
        lock = _LOCKS.get(key)
        if lock is None:
            lock = _LOCKS[key] = _WriterLock(key)
        return lock


def _reset_locks_in_child() -> None:
    global _LOCKS_GUARD
    _LOCKS_GUARD = threading.Lock()
    _held.count = 0  # the forking thread's locks stay its parent's
    for lock in list(_LOCKS.values()):
        lock._after_fork()


os.register_at_fork(after_in_child=_reset_locks_in_child)


class _LockingConnection(sqlite3.Connection):
    """A sqlite3 connection that holds the database's writer lock from ``BEGIN IMMEDIATE``
    until its transaction ends, however it ends (commit, rollback, close)."""

    writer_lock: _WriterLock | None = None
    _holding: _WriterLock | None = None

    def take_writer_lock(self) -> None:
        if self._holding is None and self.writer_lock is not None:
            self.writer_lock.acquire()
            self._holding = self.writer_lock

    def release_writer_lock(self) -> None:
        held, self._holding = self._holding, None
        if held is not None:
            held.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            # A COMMIT that failed leaves the transaction open: the caller's rollback
            # releases the lock then.
            if not self.in_transaction:
                self.release_writer_lock()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.release_writer_lock()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.release_writer_lock()


# -- bulk inserts ------------------------------------------------------------------------

_PLANS: dict[tuple[str, Table], tuple[str, list[str], bool, dict[str, Any]]] = {}


def insert_many(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT ``rows`` (each with a value for every column) in one executemany.

    The same rows as ``conn.execute(insert(table), rows)``, at a fraction of its CPU:
    SQLAlchemy builds and converts every row's parameters one by one (about half of a
    bulk load's time); here each column's type conversion runs once per distinct value
    in a row (timestamps shared by a whole batch are converted once).
    """
    if not rows:
        return
    dialect = conn.dialect
    plan = _PLANS.get((dialect.name, table))
    if plan is None:
        compiled = insert(table).compile(dialect=dialect)
        names = list(compiled.positiontup or []) if compiled.positional else [
            c.key for c in table.columns]
        if sorted(names) != sorted(c.key for c in table.columns):  # escaped bind names
            conn.execute(insert(table), list(rows))
            return
        # Bytes go to the drivers as they are (sqlite3 and psycopg take them natively).
        processors = {c.key: proc for c in table.columns
                      if not isinstance(c.type, LargeBinary)
                      and (proc := c.type.dialect_impl(dialect).bind_processor(dialect))}
        plan = _PLANS[(dialect.name, table)] = (compiled.string, names, compiled.positional,
                                                processors)
    sql, names, positional, processors = plan
    converted: dict[str, tuple[Any, Any]] = {}
    params: list[Any] = []
    for row in rows:
        values = []
        for name in names:
            value = row[name]
            proc = processors.get(name)
            if proc is not None and value is not None:
                last = converted.get(name)
                if last is not None and last[0] is value:
                    value = last[1]
                else:
                    out = proc(value)
                    converted[name] = (value, out)
                    value = out
            values.append(value)
        params.append(tuple(values) if positional else dict(zip(names, values, strict=True)))
    conn.exec_driver_sql(sql, params)


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

def driver_cursor(conn: Connection) -> Any:
    """A DBAPI cursor on ``conn``'s connection, inside its transaction."""
    return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]


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
