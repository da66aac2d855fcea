"""The customer hot paths (issue 2): group-committed creates and lookups on driver
connections, with the same guarantees as the session paths."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

import audit
from audit import head
from privacy_hub.db import read_only, transaction
from privacy_hub.hub import Hub
from privacy_hub.vault.models import Customer
from privacy_hub.vault.service import HotPath, NotLogged
from tests.hubs import make_hub

ACTOR = audit.Actor("cli", "tests")


@pytest.fixture
def hub(tmp_path: Path, db_url: str) -> Iterator[Hub]:
    h = make_hub(tmp_path, db_url)
    yield h
    h.close()


@pytest.fixture
def hot(hub: Hub) -> HotPath:
    appender = audit.Appender(hub.sessions)
    audit.install(hub.read_sessions, appender=appender)
    return HotPath(read_only(hub.engine), appender)


def _actions(hub: Hub, action: str) -> list[audit.AuditEntry]:
    with hub.sessions() as session:
        return list(session.scalars(select(audit.AuditEntry)
                                    .where(audit.AuditEntry.action == action)))


def _chain_ok(hub: Hub) -> None:
    with hub.read_sessions() as session:
        report = audit.verify_chain(session, hub.audit_public_keys())
    assert report.ok, report.problem


def _threads(n: int, fn: Any) -> list[Any]:
    start = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = fn(i)
        except BaseException as exc:  # reported by the assertions
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def test_concurrent_creates_are_durable_with_their_entries_in_one_chain(
        hub: Hub, hot: HotPath) -> None:
    results = _threads(12, lambda i: hub.vault.create_new(
        hot, {"email": f"Hot{i}@Example.org", "first_name": "Ada",
              "address": {"city": "Berlin", "country": "DE"}}, actor=ACTOR))
    assert all(isinstance(r, dict) for r in results), results
    ids = {r["id"] for r in results}
    assert len(ids) == 12
    assert results[0]["email"] == "hot0@example.org"
    assert results[0]["address"] == {"city": "Berlin", "country": "DE"}
    entries = _actions(hub, "customer.created")
    assert {e.customer_id for e in entries} == ids
    _chain_ok(hub)
    with transaction(hub.sessions) as session:
        for r in results:  # sealed under their own keys, readable through the vault
            profile = hub.vault.read(session, r["id"], actor=ACTOR)
            assert profile["email"] == r["email"] and profile["first_name"] == "Ada"
        assert hub.vault.lookup(session, email="HOT3@example.org", actor=ACTOR) == [
            results[3]["id"]]


def test_concurrent_creates_of_one_email_create_it_once(hub: Hub, hot: HotPath) -> None:
    results = _threads(8, lambda i: hub.vault.create_new(
        hot, {"email": "same@example.org"}, actor=ACTOR))
    created = [r for r in results if r is not None]
    assert len(created) == 1, results  # the others are told to upsert (None)
    with hub.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == 1


def test_an_existing_identifier_is_left_to_upsert(hub: Hub, hot: HotPath) -> None:
    first = hub.vault.create_new(hot, {"email": "a@example.org", "external_id": "x-1"},
                                 actor=ACTOR)
    assert first is not None
    assert hub.vault.create_new(hot, {"email": "b@example.org", "external_id": "x-1"},
                                actor=ACTOR) is None
    assert hub.vault.create_new(hot, {"email": "A@example.org"}, actor=ACTOR) is None
    assert hub.vault.create_new(hot, {"first_name": "No mail"}, actor=ACTOR) is None


def test_a_failing_work_fails_only_its_own_caller(hub: Hub, hot: HotPath) -> None:
    def work(i: int) -> Any:
        def run(conn: Any, _shared: dict[str, Any]) -> tuple[int, list[Any]]:
            if i == 3:
                conn.execute(text("SELECT * FROM no_such_table"))
            return i, [audit.entry(ACTOR, "test.worked", details={"i": i})]
        return hot.writer.run(run)

    results = _threads(8, work)
    assert [r for r in results if isinstance(r, int)] == [0, 1, 2, 4, 5, 6, 7]
    assert isinstance(results[3], Exception)
    assert sorted(e.details for e in _actions(hub, "test.worked")) == sorted(
        f'{{"i":{i}}}' for i in (0, 1, 2, 4, 5, 6, 7))
    _chain_ok(hub)


def test_lookups_are_audited_before_they_answer(hub: Hub, hot: HotPath,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    created = hub.vault.create_new(hot, {"email": "look@example.org", "phone": "+4915112345678"},
                                   actor=ACTOR)
    assert created is not None
    results = _threads(6, lambda i: hub.vault.lookup(
        None, actor=ACTOR, hot=hot, **({"email": " LOOK@example.org"} if i % 2 else
                                       {"phone": "+49 151 12345678"})))
    assert results == [[created["id"]]] * 6
    assert hub.vault.lookup(None, actor=ACTOR, hot=hot, email="nobody@example.org") == []
    entries = _actions(hub, "customer.looked_up")
    assert len(entries) == 7
    assert sum(e.customer_id == created["id"] for e in entries) == 6
    _chain_ok(hub)

    def broken(*_args: object) -> None:
        raise RuntimeError("disk I/O error")

    monkeypatch.setattr(head, "append", broken)
    with pytest.raises(NotLogged):
        hub.vault.lookup(None, actor=ACTOR, hot=hot, email="look@example.org")


def test_announced_callers_are_awaited_only_while_they_are_on_their_way(
        hub: Hub, hot: HotPath) -> None:
    writer = hot.writer
    with writer.upcoming(), writer.upcoming():  # nested, and one never calls run()
        assert writer._upcoming == 2
        writer.append([audit.entry(ACTOR, "test.worked")])
        assert writer._upcoming == 1
    assert writer._upcoming == 0
    results = _threads(6, lambda i: _announced_append(writer, i))
    assert results == [None] * 6
    assert writer._upcoming == 0
    assert len(_actions(hub, "test.worked")) == 7
    _chain_ok(hub)


def _announced_append(writer: audit.Appender, i: int) -> None:
    with writer.upcoming():
        writer.append([audit.entry(ACTOR, "test.worked", details={"i": i})])
