"""SQLite: one writer at a time, queued without polling.

SQLite writers queue for the write lock here, not in SQLite: a thread takes this
process's lock for the database file and then an exclusive ``flock`` on
``<database>-writer.lock`` (other processes), both released as soon as the transaction
commits or rolls back (``LockingConnection``, whose ``BEGIN IMMEDIATE`` privacy_hub/db.py
issues). Waiters sleep in the kernel and wake the moment the lock is free, where SQLite's
busy handler would sleep and poll (1 ms, then up to 100 ms: seconds of p99 under load).
SQLite's own busy timeout stays as the backstop for processes that do not take the lock
file (e.g. the sqlite3 shell). Under ``synchronous=NORMAL`` the commit is made durable
after the lock is released (privacy_hub/wal_sync.py), so the next writer need not wait
for this one's fsync.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from functools import partial

from sqlalchemy import exc

from privacy_hub.wal_sync import WalSync

#: seconds a SQLite writer waits for another thread of its process before giving up, as
#: SQLite's own busy timeout does ("database is locked")
SQLITE_LOCK_TIMEOUT = 30.0


class _Held(threading.local):
    count = 0


#: how many writer locks the current thread holds
_held = _Held()


class WriterLock:
    """Exclusive right to write one SQLite database: a thread lock, then a file lock."""

    def __init__(self, database: str) -> None:
        self.path = database + "-writer.lock"
        self._local = threading.Lock()
        self._fd: int | None = None
        #: durability of the database's commits in this process (used under NORMAL)
        self.wal = WalSync(database)

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
        self.wal.after_fork()


_LOCKS: weakref.WeakValueDictionary[str, WriterLock] = weakref.WeakValueDictionary()
_LOCKS_GUARD = threading.Lock()


def writer_lock(database: str) -> WriterLock:
    """The process-wide lock of one database file (every engine on it shares it)."""
    key = os.path.realpath(database)
    with _LOCKS_GUARD:
        lock = _LOCKS.get(key)
        if lock is None:
            lock = _LOCKS[key] = WriterLock(key)
        return lock


def _reset_locks_in_child() -> None:
    global _LOCKS_GUARD
    _LOCKS_GUARD = threading.Lock()
    _held.count = 0  # the forking thread's locks stay its parent's
    for lock in list(_LOCKS.values()):
        lock._after_fork()


os.register_at_fork(after_in_child=_reset_locks_in_child)


class LockingConnection(sqlite3.Connection):
    """A sqlite3 connection that holds the database's writer lock from ``BEGIN IMMEDIATE``
    until its transaction ends, however it ends (commit, rollback, close).

    With ``wal_sync`` set (``synchronous=NORMAL``), a commit of a write transaction returns
    once it is durable: fdatasync of the WAL after the lock is released. A caller that
    sets ``sync_later`` gets that sync from ``take_sync()`` instead, to run it when it has
    handed on what it holds (audit.Appender: the next batch writes meanwhile).
    """

    writer_lock: WriterLock | None = None
    wal_sync: WalSync | None = None
    sync_later = False
    _holding: WriterLock | None = None
    _pending: int | None = None

    def take_writer_lock(self) -> None:
        if self._holding is None and self.writer_lock is not None:
            self.writer_lock.acquire()
            self._holding = self.writer_lock

    def release_writer_lock(self) -> None:
        held, self._holding = self._holding, None
        if held is not None:
            held.release()

    def commit(self) -> None:
        wrote = self._holding is not None  # BEGIN IMMEDIATE: a write transaction
        try:
            super().commit()
        finally:
            # A COMMIT that failed leaves the transaction open: the caller's rollback
            # releases the lock then.
            if not self.in_transaction:
                self.release_writer_lock()
        if wrote and self.wal_sync is not None:
            ticket = self.wal_sync.committed()
            if self.sync_later:
                self._pending = ticket
            else:
                self.wal_sync.sync(ticket)

    def take_sync(self) -> Callable[[], None] | None:
        """What makes the commits made under ``sync_later`` durable (None: nothing to do).

        It raises SQLAlchemy's OperationalError (answered 503), as a failed commit does.
        """
        ticket, self._pending = self._pending, None
        if ticket is None or self.wal_sync is None:
            return None
        return partial(_sync_as_sqlalchemy, self.wal_sync, ticket)

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


def _sync_as_sqlalchemy(wal: WalSync, ticket: int) -> None:
    try:
        wal.sync(ticket)
    except sqlite3.Error as err:
        raise exc.OperationalError("COMMIT", None, err) from err
