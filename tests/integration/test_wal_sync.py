"""SQLite under synchronous=NORMAL: every write is made durable by the hub's fdatasync of
the WAL, after COMMIT and the writer lock, before its request is answered (issue 14).

The ordering is recorded in a live app: os.fdatasync is wrapped to look, at the moment it
runs, at what another connection sees and whether the writer lock is free, and Flask's
``request_finished`` signal marks the answer.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request_finished
from sqlalchemy import text

import audit
from audit.chain import Unchained
from privacy_hub.app import create_app
from privacy_hub.db import make_engine, transaction
from privacy_hub.hub import Hub
from privacy_hub.systems import SCOPES
from privacy_hub.wal_sync import WalSync
from tests.conftest import SEED_EMAIL
from tests.hubs import make_hub
from tests.web.conftest import new_key

#: the hub syncs the WAL itself only on SQLite (PostgreSQL flushes its own WAL at commit)
SQLITE = pytest.mark.parametrize("db_backend", ["sqlite"])


@pytest.fixture
def hub(tmp_path: Path, db_url: str) -> Iterator[Hub]:
    h = make_hub(tmp_path, db_url, sqlite_synchronous="NORMAL")
    yield h
    h.close()


def _database(hub: Hub) -> str:
    return hub.settings.database_url.removeprefix("sqlite:///")


class Recorder:
    """What happened, in order: each fdatasync with what it saw, and each answer."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.events: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def audit_entries(self) -> int:
        conn = sqlite3.connect(self.database)
        try:
            return int(conn.execute("SELECT count(*) FROM audit_entries").fetchone()[0])
        finally:
            conn.close()

    def writer_lock_free(self) -> bool:
        fd = os.open(self.database + "-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return True
        except BlockingIOError:
            return False
        finally:
            os.close(fd)

    def wrap(self, real: Callable[[int], None]) -> Callable[[int], None]:
        def fdatasync(fd: int) -> None:
            seen = {"entries": self.audit_entries(), "lock_free": self.writer_lock_free(),
                    "wal": os.path.samestat(os.fstat(fd), os.stat(self.database + "-wal"))}
            real(fd)
            with self.lock:
                self.events.append(("synced", seen))
        return fdatasync

    def answered(self, _sender: Any, response: Any, **_extra: Any) -> None:
        with self.lock:
            self.events.append(("answered", response.status_code))


@pytest.fixture
def recorded(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Flask, Recorder, dict[str, str]]]:
    key = new_key(hub, "test-admin", list(SCOPES))
    app = create_app(hub=hub)
    recorder = Recorder(_database(hub))
    monkeypatch.setattr(os, "fdatasync", recorder.wrap(os.fdatasync))
    request_finished.connect(recorder.answered, app)
    try:
        yield app, recorder, {"Authorization": f"Bearer {key}"}
    finally:
        request_finished.disconnect(recorder.answered, app)


def _one_request(recorder: Recorder, send: Callable[[], Any]) -> tuple[int, list[tuple[str, Any]]]:
    before = recorder.audit_entries()
    recorder.events.clear()
    resp = send()
    return before, [*recorder.events, ("client", resp.status_code)]


@SQLITE
def test_a_group_committed_write_is_synced_after_commit_and_lock_and_before_the_answer(
        recorded: tuple[Flask, Recorder, dict[str, str]]) -> None:
    """Customer create (the hot path, through the group committer audit.Appender)."""
    app, recorder, auth = recorded
    client = app.test_client()
    before, events = _one_request(recorder, lambda: client.post(
        "/api/v1/customers", json={"email": SEED_EMAIL, "first_name": "Ada"}, headers=auth))
    assert [name for name, _ in events] == ["synced", "answered", "client"], events
    seen = events[0][1]
    assert seen["entries"] > before, "fdatasync ran before the COMMIT was visible"
    assert seen["lock_free"], "fdatasync ran while the writer lock was held"
    assert seen["wal"], "fdatasync was not called on the database's WAL file"
    assert events[1][1] == 201


@SQLITE
def test_a_write_through_the_request_session_is_synced_before_the_answer(
        recorded: tuple[Flask, Recorder, dict[str, str]]) -> None:
    """Rectification commits the request's own session (web/context.py), not the appender."""
    app, recorder, auth = recorded
    client = app.test_client()
    cid = client.post("/api/v1/customers", json={"email": SEED_EMAIL}, headers=auth).json["id"]
    before, events = _one_request(recorder, lambda: client.patch(
        f"/api/v1/customers/{cid}", json={"first_name": "Grace"}, headers=auth))
    assert [name for name, _ in events] == ["synced", "answered", "client"], events
    assert events[0][1]["entries"] > before
    assert events[0][1]["lock_free"]
    assert events[1][1] == 200


@SQLITE
def test_a_plain_session_write_outside_requests_is_synced_when_commit_returns(
        hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder(_database(hub))
    monkeypatch.setattr(os, "fdatasync", recorder.wrap(os.fdatasync))
    before = recorder.audit_entries()
    new_key(hub, "a-system", ["customers:read"])  # a session, committed by transaction()
    assert [name for name, _ in recorder.events] == ["synced"]
    seen = recorder.events[0][1]
    assert seen["entries"] > before and seen["lock_free"] and seen["wal"]


@SQLITE
def test_full_leaves_the_fsync_to_sqlite_and_reads_without_writes_sync_nothing(
        tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (calls.append(fd), real(fd))[1])
    full = make_engine(db_url, sqlite_synchronous="FULL")
    with full.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
    assert calls == []  # SQLite's own sync (FULL) goes through its VFS, not os.fdatasync
    full.dispose()
    normal = make_engine(db_url, sqlite_synchronous="NORMAL")
    with normal.connect() as conn:
        assert conn.scalar(text("SELECT x FROM t")) == 1
        conn.rollback()
    assert calls == []
    with normal.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (2)"))
    assert len(calls) == 1
    normal.dispose()


@SQLITE
def test_a_failed_fdatasync_answers_503_and_every_later_write_too(
        recorded: tuple[Flask, Recorder, dict[str, str]], hub: Hub,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """After an I/O error the kernel may have dropped the pages: nothing is acknowledged."""
    app, _recorder, auth = recorded

    def broken(_fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken)
    client = app.test_client()
    created = client.post("/api/v1/customers", json={"email": SEED_EMAIL}, headers=auth)
    assert created.status_code == 503, created.text
    assert created.headers["Content-Type"].startswith("application/problem+json")
    assert SEED_EMAIL not in created.text
    monkeypatch.undo()  # the disk is back, but this process can no longer vouch for it
    again = client.post("/api/v1/customers", json={"email": "b@example.org"}, headers=auth)
    assert again.status_code == 503, again.text
    with transaction(hub.sessions):
        pass


# -- WalSync on its own ----------------------------------------------------------------------

def test_one_fdatasync_covers_every_commit_that_returned_before_it_began(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    database = str(tmp_path / "hub.db")
    Path(database + "-wal").write_bytes(b"frames")
    wal = WalSync(database)
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []
    real = os.fdatasync

    def slow(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 1:
            started.set()
            assert release.wait(10)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", slow)
    first = threading.Thread(target=wal.sync, args=(wal.committed(),))
    first.start()
    assert started.wait(10)
    # Two more commits return while the first sync runs: it does not cover them.
    later = [threading.Thread(target=wal.sync, args=(wal.committed(),)) for _ in range(2)]
    for t in later:
        t.start()
    release.set()
    for t in [first, *later]:
        t.join(10)
        assert not t.is_alive()
    assert len(calls) == 2  # one for the first, one shared by the two after it
    wal.sync(2)  # already durable: no call
    assert len(calls) == 2


def test_a_new_wal_file_is_reopened_and_its_directory_synced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    database = str(tmp_path / "hub.db")
    wal_path = Path(database + "-wal")
    wal = WalSync(database)
    synced: list[os.stat_result] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.fstat(fd)), real(fd))[1])
    wal.sync(wal.committed())  # no WAL file: nothing outside the database to sync
    assert wal.syncs == 0
    wal_path.write_bytes(b"one")
    wal.sync(wal.committed())
    wal.sync(wal.committed())
    assert wal.syncs == 2
    assert [os.path.samestat(s, os.stat(tmp_path)) for s in synced] == [True]  # once
    wal_path.unlink()  # SQLite deleted it (last connection closed) and made a new one
    wal_path.write_bytes(b"two")
    wal.sync(wal.committed())
    assert wal.syncs == 3
    assert len(synced) == 2


@SQLITE
def test_appender_batches_are_answered_only_once_synced(
        hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """audit.Appender lets the next batch write while this one syncs, never answers early:
    each caller returns only after an fdatasync that began once its entry was committed."""
    appender = audit.Appender(hub.sessions)
    audit.install(hub.read_sessions, appender=appender)
    recorder = Recorder(_database(hub))
    monkeypatch.setattr(os, "fdatasync", recorder.wrap(os.fdatasync))

    def one(i: int) -> None:
        def work(_conn: Any, _shared: dict[str, Any]) -> tuple[int, list[Unchained]]:
            return i, [Unchained("cli", "tests", "test.write", None, f'{{"i":{i}}}')]
        got = appender.run(work)
        with recorder.lock:
            recorder.events.append(("returned", got))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
        assert not t.is_alive()
    conn = sqlite3.connect(_database(hub))
    try:
        # How many entries existed once entry i was committed: its rank in the chain.
        rank = {int(details[5:-1]): int(n) for details, n in conn.execute(
            "SELECT e.details, (SELECT count(*) FROM audit_entries o WHERE o.seq <= e.seq) "
            "FROM audit_entries e WHERE e.action = 'test.write'")}
    finally:
        conn.close()
    assert sorted(rank) == list(range(16))
    returned = [(k, got) for k, (name, got) in enumerate(recorder.events) if name == "returned"]
    assert len(returned) == 16
    for k, i in returned:
        assert any(name == "synced" and seen["entries"] >= rank[i]
                   for name, seen in recorder.events[:k]), f"work {i} returned before its sync"
