"""Concurrent first consent decisions on PostgreSQL, across two server processes.

`privacy-hub serve --workers 2` on PostgreSQL. Eight threads send the FIRST decision for
one customer and one purpose at the same moment, each on a new connection so that both
processes take some. Every one is recorded (201, never a 409 "concurrent change"), and
the customer ends with one consistent state: the current state is the last ledger event,
each event's status follows from the one before it (a refusal after a grant is a
withdrawal), the events are in time order, and the audit chain verifies.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from privacy_hub.client import HubClient, HubError
from tests.e2e.live import LiveHub
from tests.pg import PostgresServer

pytestmark = pytest.mark.slow

PURPOSE = "marketing.sms"  # consent-based, no double opt-in
WRITERS = 8
ROUNDS = 3  # fresh customers: each round is a new race for the first decision


@pytest.fixture(scope="module")
def pg_hub(tmp_path_factory: pytest.TempPathFactory,
           pg_server: PostgresServer) -> Iterator[LiveHub]:
    dbname = f"race_{uuid.uuid4().hex[:12]}"
    hub = LiveHub(tmp_path_factory.mktemp("race") / "instance",
                  database_url=pg_server.create_database(dbname), workers=2, threads=4)
    try:
        hub.init()
        hub.start()
        yield hub
    finally:
        hub.close()
        pg_server.drop_database(dbname)


def _new_customer(hub: LiveHub) -> str:
    resp = requests.post(hub.url("/api/v1/customers"), headers=hub.headers, timeout=30,
                         json={"email": f"race-{uuid.uuid4().hex[:8]}@example.org"})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def _history(hub: LiveHub, customer_id: str) -> list[dict[str, Any]]:
    resp = requests.get(hub.url(f"/api/v1/customers/{customer_id}/consents/history"),
                        headers=hub.headers, timeout=30)
    assert resp.status_code == 200, resp.text
    return list(resp.json()["items"])


def _decide_at_once(hub: LiveHub, customer_id: str) -> list[tuple[int, dict[str, Any]]]:
    """Eight decisions (grant, refuse, grant, ...) released together by a barrier."""
    barrier = threading.Barrier(WRITERS)
    answers: list[tuple[int, dict[str, Any]] | None] = [None] * WRITERS

    def send(i: int) -> None:
        body = {"purpose": PURPOSE, "granted": i % 2 == 0, "source": f"writer-{i}"}
        barrier.wait()
        # requests.post opens a new connection each time: the kernel hands them to both workers
        resp = requests.post(hub.url(f"/api/v1/customers/{customer_id}/consents"),
                             json=body, headers=hub.headers, timeout=30)
        answers[i] = (resp.status_code, resp.json())

    threads = [threading.Thread(target=send, args=(i,)) for i in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(a is not None for a in answers), "a writer did not finish"
    return [a for a in answers if a is not None]


def _expected_status(granted: bool, before: str | None) -> str:
    if granted:
        return "granted"
    return "withdrawn" if before == "granted" else "refused"


def test_concurrent_first_decisions_are_all_recorded_in_one_consistent_order(
        pg_hub: LiveHub) -> None:
    """R-CREC-03, R-GATE-02: eight simultaneous first decisions for one customer and
    purpose on two PostgreSQL-backed processes: eight 201s, and the state is the last of
    eight ledger events that follow each other."""
    hub = pg_hub
    for _round in range(ROUNDS):
        cid = _new_customer(hub)
        answers = _decide_at_once(hub, cid)
        assert [status for status, _ in answers] == [201] * WRITERS, answers

        events = _history(hub, cid)
        assert len(events) == WRITERS
        assert {e["id"] for e in events} == {body["id"] for _, body in answers}
        times = [e["recorded_at"] for e in events]
        assert times == sorted(times) and len(set(times)) == WRITERS, times
        before = None
        for event in events:
            assert event["status"] == _expected_status(event["granted"], before), events
            before = event["status"]
        # Each answer told its caller the status its event recorded.
        recorded = {e["id"]: e["status"] for e in events}
        assert all(recorded[body["id"]] == body["status"] for _, body in answers)

        states = requests.get(hub.url(f"/api/v1/customers/{cid}/consents"),
                              headers=hub.headers, timeout=30).json()["items"]
        (state,) = [s for s in states if s["purpose"] == PURPOSE]
        last = events[-1]
        assert state["status"] == last["status"], (state, last)
        assert state["source"] == last["source"]
        check = requests.get(hub.url("/api/v1/consent-check"), headers=hub.headers, timeout=30,
                             params={"customer_id": cid, "purpose": PURPOSE}).json()
        assert check["allowed"] is (last["status"] == "granted"), check

    verified = requests.get(hub.url("/api/v1/audit/verify"), headers=hub.headers,
                            timeout=60).json()
    assert verified["ok"] is True and verified["first_bad_seq"] is None, verified
    assert "Traceback" not in hub.logs()


def test_one_decision_sent_twice_at_once_is_recorded_once_and_both_callers_get_it(
        pg_hub: LiveHub) -> None:
    """R-CREC-03: two callers send one decision with one Idempotency-Key at the same moment.
    The hub records it once and refuses the loser's commit with 409 concurrent-change
    (nothing saved); the Python client retries that once with the same key and gets the
    stored answer: both callers hold the same event, and the ledger has one."""
    hub = pg_hub
    conflicts_before = _conflicts(hub)
    for _round in range(5):
        cid = _new_customer(hub)
        key = f"race-{uuid.uuid4()}"
        barrier = threading.Barrier(2)
        results: list[Any] = [None, None]

        def send(i: int, cid: str = cid, key: str = key,
                 barrier: threading.Barrier = barrier, results: list[Any] = results) -> None:
            with HubClient(hub.base_url, hub.api_key or "", timeout=30) as client:
                barrier.wait()
                try:
                    results[i] = client.record_consent(cid, PURPOSE, True, idempotency_key=key)
                except HubError as exc:
                    results[i] = exc

        threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert all(isinstance(r, dict) for r in results), results
        assert results[0]["id"] == results[1]["id"]
        assert [e["id"] for e in _history(hub, cid)] == [results[0]["id"]]
    # The race did happen: the hub answered 409 and the client sent it again.
    assert _conflicts(hub) > conflicts_before, "no concurrent change in five rounds"


def _conflicts(hub: LiveHub) -> int:
    """Decisions the hub refused as a concurrent change, from its access log."""
    return len(re.findall(r'"POST /api/v1/customers/[^/" ]+/consents" 409 ', hub.logs()))
