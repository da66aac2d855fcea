"""A worker killed between a COMMIT and its answer loses nothing acknowledged (issue 14).

SQLite under ``synchronous=NORMAL``: the hub fdatasyncs the WAL after COMMIT and before it
answers (privacy_hub/wal_sync.py). A test-only hook (``PRIVACY_HUB_TEST_CRASH_FILE``)
SIGKILLs the worker process whose commit first finds the trigger file, at one of two
points:

- ``committed``: right after COMMIT, before the fdatasync. The requests of that commit
  get no answer (their connection drops): an answer never goes out before the sync. The
  commit itself is in the WAL (the OS still holds it), so after the restart it is there
  whole, unacknowledged; a power cut at that moment could lose it, which is allowed
  because nobody was told it succeeded.
- ``synced``: after the fdatasync, before the answer: durable and unacknowledged.

Meanwhile the other worker keeps answering, the killed one is replaced, and the clients
keep writing. Afterwards, as in test_crash_recovery.py: every acknowledged write is there
exactly as acknowledged, every write in flight landed whole or not at all, every customer
has its key, the audit chain verifies, and no identifier reached the logs.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests

from privacy_hub.wal_sync import CRASH_FILE_VARIABLE
from tests.e2e.live import LiveHub, wait_for
from tests.e2e.test_crash_recovery import (
    REQUEST_TIMEOUT,
    THREADS,
    Acked,
    Writer,
    _seed_identifiers_the_logs_must_not_show,
    assert_clean_stop_and_quiet_logs,
    check_after_restart,
)


def _write_through_a_worker_crash(live: LiveHub, writer: Writer, stop: threading.Event,
                                  answered_after: list[float]) -> None:
    """Create and rectify customers until told to stop; a dropped request is not retried."""
    session = requests.Session()
    session.headers.update(live.headers)
    n = 0
    while not stop.is_set():
        n += 1
        ids = list(writer.customers)
        if n % 3 == 0 and ids:
            cid = ids[n % len(ids)]
            acked = writer.customers[cid]
            if acked.in_flight_first_name is not None:
                continue  # its last rectification may have landed: leave it as it is
            value = f"v{n}-{writer.index}"
            acked.in_flight_first_name = value
            try:
                resp = session.patch(live.url(f"/api/v1/customers/{cid}"),
                                     json={"first_name": value}, timeout=REQUEST_TIMEOUT)
            except requests.RequestException:
                session = _new_session(live)
                continue  # killed: may have landed (the value stays in flight)
            if resp.status_code == 200:
                acked.first_name, acked.patches = value, acked.patches + 1
                answered_after.append(time.monotonic())
            else:
                writer.unexpected.append(f"PATCH {resp.status_code} {resp.text[:200]}")
            acked.in_flight_first_name = None
            continue
        email = f"crash-{writer.index}-{n}@example.org"
        body = {"email": email, "first_name": f"v0-{writer.index}-{n}",
                "attributes": {"writer": writer.index, "n": n}}
        try:
            resp = session.post(live.url("/api/v1/customers"), json=body, timeout=REQUEST_TIMEOUT)
        except requests.RequestException:
            writer.unanswered_emails.append(email)
            session = _new_session(live)
            continue
        if resp.status_code == 201:
            writer.customers[resp.json()["id"]] = Acked(email, body["attributes"],
                                                        body["first_name"])
            answered_after.append(time.monotonic())
        else:
            writer.unexpected.append(f"POST {resp.status_code} {resp.text[:200]}")


def _new_session(live: LiveHub) -> requests.Session:
    session = requests.Session()
    session.headers.update(live.headers)
    return session


@pytest.mark.slow
@pytest.mark.parametrize("point", ["committed", "synced"])
def test_a_worker_killed_between_commit_and_answer_loses_nothing_acknowledged(
        tmp_path: Path, point: str) -> None:
    trigger = tmp_path / "crash-trigger"
    live = LiveHub(tmp_path / "instance")
    live.env["PRIVACY_HUB_SQLITE_SYNCHRONOUS"] = "NORMAL"
    live.env[CRASH_FILE_VARIABLE] = str(trigger)
    try:
        live.init()
        live.start()
        seed_id = _seed_identifiers_the_logs_must_not_show(live)

        writers = [Writer(i) for i in range(THREADS)]
        answered: list[float] = []
        stop = threading.Event()
        threads = [threading.Thread(target=_write_through_a_worker_crash,
                                    args=(live, w, stop, answered), daemon=True)
                   for w in writers]
        for t in threads:
            t.start()
        time.sleep(0.8)
        trigger.write_text(point, encoding="utf-8")
        wait_for("the crash hook to fire", lambda: Path(f"{trigger}.fired").exists(),
                 timeout=30, interval=0.01)
        crashed_at = time.monotonic()
        # The killed worker is replaced; writes go on being acknowledged.
        wait_for("writes acknowledged after the crash",
                 lambda: sum(1 for at in answered if at > crashed_at + 0.5) >= 5, timeout=60)
        stop.set()
        for t in threads:
            t.join(timeout=REQUEST_TIMEOUT + 5)
            assert not t.is_alive()

        assert not trigger.exists()
        assert not [u for w in writers for u in w.unexpected], "a live server refused writes"
        acked = {cid: a for w in writers for cid, a in w.customers.items()}
        assert len(acked) >= 10, "too few writes to prove anything"
        dropped = [e for w in writers for e in w.unanswered_emails] + [
            a.in_flight_first_name for a in acked.values() if a.in_flight_first_name]
        assert dropped, "the killed worker was answering no write"

        live.stop()
        live.start()
        check_after_restart(live, writers, seed_id)
        assert_clean_stop_and_quiet_logs(live)
    finally:
        live.close()
