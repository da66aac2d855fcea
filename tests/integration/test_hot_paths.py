"""The request hot paths (issue 2): SQLite's writer lock, group-committed audit entries of
reads, the API key cache, the bulk insert helper and the bulk sealer."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select, text, update
from sqlalchemy.exc import OperationalError

import audit
from audit import head
from audit.clock import utcnow
from privacy_hub import systems as systems_module
from privacy_hub.db import ReadOnlyViolation, insert_many, make_engine, transaction
from privacy_hub.hub import Hub
from privacy_hub.models import System
from privacy_hub.systems import SCOPES
from privacy_hub.vault import crypto
from privacy_hub.vault.keyring import DataKey
from privacy_hub.vault.keystore import CustomerKey
from tests.hubs import make_hub

ACTOR = audit.Actor("cli", "tests")


@pytest.fixture
def hub(tmp_path: Path, db_url: str) -> Iterator[Hub]:
    h = make_hub(tmp_path, db_url)
    audit.install(h.read_sessions, appender=audit.Appender(h.sessions))
    yield h
    h.close()


def _entries(hub: Hub, action: str) -> list[audit.AuditEntry]:
    with hub.sessions() as session:
        return list(session.scalars(select(audit.AuditEntry)
                                    .where(audit.AuditEntry.action == action)
                                    .order_by(audit.AuditEntry.seq)))


# -- audit entries of reads -------------------------------------------------------------

def test_concurrent_reads_append_one_unbroken_chain(hub: Hub) -> None:
    readers, each = 8, 15
    start = threading.Barrier(readers)
    errors: list[BaseException] = []

    def reader(index: int) -> None:
        try:
            start.wait()
            for n in range(each):
                with transaction(hub.read_sessions) as session:
                    session.execute(text("SELECT 1"))
                    audit.record(session, actor=audit.Actor("job", f"r{index}"),
                                 action="customer.read", details={"n": n})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert len(_entries(hub, "customer.read")) == readers * each
    with hub.read_sessions() as session:
        report = audit.verify_chain(session, hub.audit_public_keys())
    assert report.ok, report.problem


def test_a_read_is_logged_before_its_commit_returns_and_a_rollback_logs_nothing(
        hub: Hub) -> None:
    with hub.read_sessions() as session:
        audit.record(session, actor=ACTOR, action="customer.read", details={})
        session.rollback()
    assert _entries(hub, "customer.read") == []
    session = hub.read_sessions()
    audit.record(session, actor=ACTOR, action="customer.read", details={})
    session.commit()
    assert len(_entries(hub, "customer.read")) == 1  # durable when commit() returned
    session.close()


def test_a_read_whose_entry_cannot_be_committed_fails(
        hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object) -> None:
        raise OperationalError("INSERT", None, Exception("disk I/O error"))

    monkeypatch.setattr(head, "append", broken)
    session = hub.read_sessions()
    audit.record(session, actor=ACTOR, action="customer.read", details={})
    with pytest.raises(OperationalError):
        session.commit()
    session.close()


def test_a_read_only_session_cannot_write(hub: Hub) -> None:
    with hub.read_sessions() as session, pytest.raises(ReadOnlyViolation):
        session.execute(update(System).values(name="x"))


# -- SQLite's writer lock ---------------------------------------------------------------

def _hold_write_lock(url: str, seconds: float, ready: Any) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("SELECT 1"))
        ready.set()
        time.sleep(seconds)
    engine.dispose()


@pytest.mark.parametrize("db_backend", ["sqlite"])
def test_a_writer_waiting_for_another_process_starts_as_soon_as_it_commits(
        db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    child = ctx.Process(target=_hold_write_lock, args=(db_url, 0.5, ready))
    child.start()
    try:
        assert ready.wait(20)
        started = time.monotonic()
        with engine.begin() as conn:  # waits for the child's commit, in the kernel
            waited = time.monotonic() - started
            conn.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        child.join(20)
    assert child.exitcode == 0
    assert 0.3 < waited < 2.0  # it waited for the other process, then went on
    engine.dispose()


@pytest.mark.parametrize("db_backend", ["sqlite"])
def test_the_writer_lock_is_released_however_a_transaction_ends(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))

    def fail_in_a_transaction() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
            raise ZeroDivisionError  # rolled back

    with pytest.raises(ZeroDivisionError):
        fail_in_a_transaction()
    conn2 = engine.connect()
    conn2.begin()
    conn2.execute(text("INSERT INTO t VALUES (2)"))
    conn2.close()  # closed mid-transaction: returned to the pool, rolled back
    done = threading.Event()

    def other_thread() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (3)"))
        done.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join(10)
    assert done.is_set()
    with engine.connect() as conn:
        assert conn.scalars(text("SELECT x FROM t")).all() == [3]
    engine.dispose()


# -- API keys ---------------------------------------------------------------------------

def _new_system(hub: Hub, name: str) -> str:
    with transaction(hub.sessions) as session:
        _, key, _ = hub.systems.create(session, name=name, scopes=list(SCOPES), actor=ACTOR)
    return key


def test_a_rotated_key_stops_at_once_here_and_within_the_cache_time_elsewhere(
        hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    key = _new_system(hub, "crm")
    other = systems_module.SystemRegistry(os.urandom(32))  # another process's registry
    assert other.authenticate(hub.read_sessions, key) is not None
    assert hub.systems.authenticate(hub.read_sessions, key) is not None
    with transaction(hub.sessions) as session:
        new_key = hub.systems.rotate_key(session, "crm", actor=ACTOR)
    assert hub.systems.authenticate(hub.read_sessions, key) is None
    assert hub.systems.authenticate(hub.read_sessions, new_key) is not None
    # The other process still trusts what it read, for at most AUTH_CACHE_SECONDS.
    assert other.authenticate(hub.read_sessions, key) is not None
    later = time.monotonic() + systems_module.AUTH_CACHE_SECONDS + 0.1
    monkeypatch.setattr(systems_module.time, "monotonic", lambda: later)
    assert other.authenticate(hub.read_sessions, key) is None


def test_a_disabled_system_stops_within_the_cache_time(
        hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    key = _new_system(hub, "crm")
    assert hub.systems.authenticate(hub.read_sessions, key) is not None
    with transaction(hub.sessions) as session:
        session.execute(update(System).values(disabled_at=utcnow()))
    later = time.monotonic() + systems_module.AUTH_CACHE_SECONDS + 0.1
    monkeypatch.setattr(systems_module.time, "monotonic", lambda: later)
    assert hub.systems.authenticate(hub.read_sessions, key) is None


def test_a_cached_key_still_needs_its_secret(hub: Hub) -> None:
    key = _new_system(hub, "crm")
    assert hub.systems.authenticate(hub.read_sessions, key) is not None
    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert hub.systems.authenticate(hub.read_sessions, wrong) is None


# -- bulk helpers -----------------------------------------------------------------------

def test_insert_many_stores_what_a_core_insert_stores(hub: Hub) -> None:
    now = utcnow()
    rows = [{"customer_id": f"00000000-0000-4000-8000-00000000000{i}", "key_class": "x",
             "dek_version": 1, "kek_version": 1, "wrapped": bytes([i]) * 40,
             "created_at": now - timedelta(seconds=i)} for i in range(3)]
    with transaction(hub.sessions) as session:
        insert_many(session.connection(), CustomerKey.__table__, rows)  # type: ignore[arg-type]
    with hub.sessions() as session:
        stored = session.execute(select(CustomerKey.customer_id, CustomerKey.wrapped,
                                        CustomerKey.created_at)
                                 .where(CustomerKey.key_class == "x")
                                 .order_by(CustomerKey.customer_id)).all()
    assert [(r.customer_id, r.wrapped, r.created_at) for r in stored] == [
        (r["customer_id"], r["wrapped"], r["created_at"]) for r in rows]


def test_seal_row_makes_what_open_reads_and_binds_each_cell() -> None:
    key = DataKey("4d0c6a52-8f0e-4c57-9d8b-0c9a3b1d2e10", "default", 7, AESGCM(os.urandom(32)))
    cells = {"email_ct": b"a@example.org", "first_name_ct": "Zoë".encode()}
    sealed = key.seal_row("customers", key.customer_id, cells)
    for column, blob in sealed.items():
        assert crypto.key_version_of(blob) == 7
        assert key.open("customers", column, key.customer_id, blob) == cells[column]
    with pytest.raises(crypto.DecryptionError):
        key.open("customers", "first_name_ct", key.customer_id, sealed["email_ct"])
