"""SIGTERM drains the server: what is in flight is answered and durable, then it exits.

`privacy-hub serve` (granian, two worker processes) on SQLite and PostgreSQL. The test
holds the database's write lock itself (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: the audit
head table, which every audited write locks), so a customer create is certain to be in
flight, waiting for its group-committed transaction (audit/appender.py), when the whole
process group gets SIGTERM, as a service manager sends it. The lock is let go only after
the signal; then:

- the create is answered 201, not cut off, and the server exits with 0 only after that;
- an idle keep-alive connection does not hold the shutdown up;
- the in-process background worker stopped cleanly (its "stopped" line);
- after a restart the customer is there with its audit entry, and the chain verifies:
  the group committer had nothing left pending when the processes exited.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.e2e.live import STOP_TIMEOUT, LiveHub, wait_for

pytestmark = pytest.mark.slow

EMAIL = "drain.test@example.com"
HELD_AFTER_SIGTERM = 2.0  # seconds the write stays blocked after the signal


@contextlib.contextmanager
def _write_lock_held(live: LiveHub) -> Iterator[None]:
    """Hold the lock every audited write of the hub needs, until the block ends."""
    if live.database_url is None:
        conn = sqlite3.connect(live.instance / "hub.db", timeout=30, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield
            conn.execute("ROLLBACK")
        finally:
            conn.close()
        return
    engine = create_engine(live.database_url)
    try:
        with engine.connect() as conn:
            # SELECT ... FOR UPDATE on the head (audit/head.py) waits for this; reads do not.
            conn.execute(text("LOCK TABLE audit_head IN EXCLUSIVE MODE"))
            yield
            conn.rollback()
    finally:
        engine.dispose()


def test_sigterm_answers_the_write_in_flight_and_exits_once_it_is_durable(
        live_hub: LiveHub) -> None:
    live = live_hub
    live.start()
    assert live.process is not None
    idle = requests.Session()  # a kept-alive connection, idle when the signal comes
    assert idle.get(live.url("/api/v1/ping"), timeout=10).status_code == 200

    answer: dict[str, Any] = {}

    def create() -> None:
        try:
            resp = requests.post(live.url("/api/v1/customers"), headers=live.headers,
                                 json={"email": EMAIL, "first_name": "Dora"}, timeout=60)
            answer["status"], answer["body"] = resp.status_code, resp.json()
        except requests.RequestException as exc:
            answer["error"] = type(exc).__name__
        answer["at"] = time.monotonic()

    with _write_lock_held(live):
        writer = threading.Thread(target=create, daemon=True)
        writer.start()
        time.sleep(1.0)
        assert writer.is_alive() and not answer, "the create did not wait for the lock"
        os.killpg(live.process.pid, signal.SIGTERM)
        time.sleep(HELD_AFTER_SIGTERM)
        assert live.process.poll() is None, "the server exited with a request in flight"
        assert writer.is_alive() and not answer
        released = time.monotonic()
    writer.join(timeout=60)
    assert answer.get("status") == 201, answer
    assert answer["at"] >= released
    code = live.process.wait(timeout=STOP_TIMEOUT)
    assert code == 0, live.logs()[-3000:]
    live.stop()  # reaps it; the group is gone

    logs = live.logs()
    assert '"POST /api/v1/customers" 201' in logs
    assert "Unexpected exit" not in logs and "Killing" not in logs, logs[-3000:]
    assert re.search(r"worker \S+ stopped", logs), logs[-3000:]  # the background worker
    assert EMAIL not in logs

    live.start()
    cid = answer["body"]["id"]
    got = requests.get(live.url(f"/api/v1/customers/{cid}"), headers=live.headers, timeout=30)
    assert got.status_code == 200 and got.json()["email"] == EMAIL
    entries = requests.get(live.url("/api/v1/audit"), headers=live.headers, timeout=30,
                           params={"action": "customer.created", "limit": 1000}).json()
    assert cid in {e["customer_id"] for e in entries["items"]}
    verify = wait_for("the audit verification", lambda: requests.get(
        live.url("/api/v1/audit/verify"), headers=live.headers, timeout=60).json())
    assert verify["ok"] is True, verify
