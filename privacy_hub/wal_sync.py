"""SQLite: commits made durable after the write lock, one fdatasync for several.

Under ``PRAGMA synchronous=NORMAL`` a WAL-mode COMMIT writes its frames into the WAL file
(the OS page cache) and returns without an fsync: the database stays consistent at a power
cut, but the last commits may be lost. The hub then makes them durable itself: right after
COMMIT returns and the writer lock is released, and before the commit's request is
answered, it calls ``fdatasync`` on the WAL (``LockingConnection.commit``). The next
writer commits while this one syncs, and one fdatasync covers every commit that returned
before it started (group sync: waiters of those commits do not sync again).

Why an acknowledged commit survives a power cut (bench/README.md has the long form):

- When COMMIT returns, all of the transaction's frames are in the WAL file, appended after
  every earlier commit's. fdatasync on any descriptor of the file flushes all its dirty
  pages and its size, whichever process wrote them, so the commit and all before it are
  on disk when it returns. Recovery replays the WAL up to the last frame with a valid
  cumulative checksum, which includes that commit.
- A checkpoint (every ~1,000 pages, in some writer's COMMIT) under NORMAL syncs the WAL
  before copying its frames into the database, and the database before it lets the WAL
  be restarted. If one runs between another connection's COMMIT and its fdatasync, that
  commit was made durable by the checkpoint's syncs; a writer restarting the WAL then
  overwrites its frames in the same file (new salts), and the fdatasync that follows
  flushes the new frames, which is harmless.
- SQLite deletes the WAL only when the last connection to the database closes, after a
  complete checkpoint (synced). A committing connection is open, so its WAL cannot vanish
  between its COMMIT and its fdatasync; the descriptor kept here is still checked against
  the path on every sync (device and inode), and reopened when SQLite made a new file.
  No file at all: nothing of this process's commits is left outside the synced database.
- A WAL file SQLite just created has a directory entry that nothing synced yet: the first
  sync of each newly opened WAL also fsyncs its directory.

A reader may see a commit in the moment between its COMMIT and its fdatasync (SQLite makes
it visible at COMMIT); a read whose answer is audited is durable with its audit entry,
whose commit comes later in the same WAL and whose sync covers it.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading

#: Tests only (tests/e2e/test_crash_between_commit_and_answer.py): when this environment
#: variable names a file, the first commit of any process that finds the file claims it
#: and SIGKILLs its own process at the point the file names: ``committed`` (right after
#: COMMIT, before the fdatasync) or ``synced`` (after the fdatasync, before the answer).
CRASH_FILE_VARIABLE = "PRIVACY_HUB_TEST_CRASH_FILE"


class WalSync:
    """Durability of one SQLite database's commits in this process (fork-aware)."""

    def __init__(self, database: str) -> None:
        self.path = database + "-wal"
        self.directory = os.path.dirname(database) or "."
        self._cond = threading.Condition(threading.Lock())
        self._committed = 0  # tickets handed out, one per COMMIT that returned
        self._synced = 0  # every ticket up to this one is durable
        self._syncing = False
        self._failed: OSError | None = None
        self._fd: int | None = None
        self._file: tuple[int, int] | None = None  # (device, inode) of _fd
        self._directory_synced = True
        #: how many fdatasync calls this process made (tests and benchmarks read it)
        self.syncs = 0
        self._crash_file = os.environ.get(CRASH_FILE_VARIABLE) or None

    def committed(self) -> int:
        """Note a COMMIT that has just returned: the ticket ``sync`` waits for."""
        if self._crash_file is not None:
            self._crash_if_asked(self._crash_file, "committed")
        with self._cond:
            self._committed += 1
            return self._committed

    @staticmethod
    def _crash_if_asked(path: str, point: str) -> None:
        try:
            with open(path, encoding="utf-8") as fh:
                if fh.read().strip() != point:
                    return
            os.rename(path, path + ".fired")  # one process claims it
        except FileNotFoundError:
            return
        os.kill(os.getpid(), signal.SIGKILL)

    def sync(self, ticket: int) -> None:
        """Return once the commit of ``ticket`` (and every one before it) is durable.

        If a sync is running, wait for it: when it covers the ticket, that is all. One
        failed fdatasync fails every later call of this process: after an I/O error the
        kernel may have dropped the dirty pages, so a retry proves nothing (the hub then
        answers 503 until it is restarted and SQLite recovers from what is on disk).
        """
        with self._cond:
            while True:
                if self._failed is not None:
                    raise sqlite3.OperationalError(
                        "the commit could not be made durable (fdatasync of the WAL failed)"
                    ) from self._failed
                if self._synced >= ticket:
                    return
                if not self._syncing:
                    break
                self._cond.wait()
            self._syncing = True
            target = self._committed  # all of these COMMITs have returned
        try:
            self._fdatasync()
            if self._crash_file is not None:
                self._crash_if_asked(self._crash_file, "synced")
        except OSError as err:
            with self._cond:
                self._failed = err
                self._syncing = False
                self._cond.notify_all()
            raise sqlite3.OperationalError(
                "the commit could not be made durable (fdatasync of the WAL failed)") from err
        except BaseException:
            with self._cond:
                self._syncing = False
                self._cond.notify_all()
            raise
        with self._cond:
            self._synced = max(self._synced, target)
            self._syncing = False
            self._cond.notify_all()

    def _fdatasync(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            # Checkpointed into the (synced) database and deleted, or never written.
            self._close()
            return
        if self._fd is None or self._file != (st.st_dev, st.st_ino):
            self._close()
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return
            opened = os.fstat(fd)
            self._fd, self._file = fd, (opened.st_dev, opened.st_ino)
            self._directory_synced = False
        os.fdatasync(self._fd)
        self.syncs += 1
        if not self._directory_synced:
            directory = os.open(self.directory, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
            self._directory_synced = True

    def _close(self) -> None:
        # SQLite takes no POSIX locks on the -wal file (its WAL locks are on -shm), so
        # closing this descriptor cannot drop one of SQLite's locks in this process.
        fd, self._fd, self._file = self._fd, None, None
        if fd is not None:
            os.close(fd)

    def after_fork(self) -> None:
        """In a child: its own descriptor and state (a parent's thread may hold ours)."""
        self._cond = threading.Condition(threading.Lock())
        self._syncing = False
        self._committed = self._synced = 0
        if self._fd is not None:
            os.close(self._fd)  # the child's copy; the parent's stays open
        self._fd, self._file = None, None
