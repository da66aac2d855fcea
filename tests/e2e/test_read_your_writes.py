"""Read-your-writes across processes (R-GATE-02).

The hub runs as `privacy-hub serve --workers 2` (two granian worker processes) on SQLite and on
PostgreSQL. A consent is withdrawn, then checked 200 times straight after, each check on
a fresh TCP connection so the checks land on both workers: never allowed. On Linux the
test also finds, through /proc, which worker answered each request, and requires that the
worker which did not record the withdrawal answered some of the checks.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.e2e.test_client import RunningHub, running_hub

pytestmark = pytest.mark.slow

PURPOSE = "marketing.sms"  # consent-based, direct marketing
CYCLES = 3
CHECKS = 200
CONFIRMS = 5
PROC_TCP = Path("/proc/net/tcp")
WHO_EVERY = 8  # find the answering worker for every 8th check: /proc/net/tcp is slow to read


@pytest.fixture(params=["sqlite", "postgresql"])
def two_worker_hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningHub]:
    env: dict[str, str] = {}
    dbname = None
    if request.param == "postgresql":
        server = request.getfixturevalue("pg_server")
        dbname = f"ryw_{uuid.uuid4().hex[:12]}"
        env = {"PRIVACY_HUB_DATABASE_URL": server.create_database(dbname),
               "PRIVACY_HUB_SECRET_KEY": secrets.token_urlsafe(48),
               "PRIVACY_HUB_ROOT_KEY_FILE": str(tmp_path / "root.key")}
    try:
        with running_hub(tmp_path, workers=2, env=env) as hub:
            if PROC_TCP.exists():
                assert len(hub.worker_pids()) == 2
            yield hub
    finally:
        if dbname is not None:
            server.drop_database(dbname)


def call(hub: RunningHub, method: str, path: str, *, query: dict[str, str] | None = None,
         body: Any = None, identify: bool = True) -> tuple[int, dict[str, Any], int | None]:
    """One request on a new TCP connection: status, JSON answer, and the worker's pid."""
    conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=10)
    headers = {"Authorization": f"Bearer {hub.api_key}"}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path + (f"?{urlencode(query)}" if query else ""), body=payload,
                     headers=headers)
        response = conn.getresponse()
        answer = json.loads(response.read())
        worker = None
        if identify:
            # Still connected (HTTP/1.1 keep-alive): the worker holding the other end answered.
            assert conn.sock is not None
            worker = serving_worker(hub, conn.sock.getsockname()[1])
        return response.status, answer, worker
    finally:
        conn.close()


def serving_worker(hub: RunningHub, client_port: int) -> int | None:
    """The pid of the worker holding the server end of our connection (Linux), else None."""
    if not PROC_TCP.exists():
        return None
    local, remote = f":{hub.port:04X}", f":{client_port:04X}"
    inode = None
    for line in PROC_TCP.read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(local) and fields[2].endswith(remote) and fields[3] == "01":
            inode = fields[9]
            break
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in hub.worker_pids():
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in os.listdir(fd_dir):
            try:
                if os.readlink(fd_dir / fd) == target:
                    return pid
            except OSError:
                continue  # closed while we looked
    return None


def check(hub: RunningHub, customer_id: str, *,
          identify: bool = False) -> tuple[dict[str, Any], int | None]:
    status, answer, worker = call(hub, "GET", "/api/v1/consent-check",
                                  query={"customer_id": customer_id, "purpose": PURPOSE},
                                  identify=identify)
    assert status == 200, answer
    return answer, worker


def decide(hub: RunningHub, customer_id: str, granted: bool) -> tuple[str, int | None]:
    status, event, worker = call(hub, "POST", f"/api/v1/customers/{customer_id}/consents",
                                 body={"purpose": PURPOSE, "granted": granted})
    assert status == 201, event
    return str(event["status"]), worker


def test_a_withdrawal_holds_for_every_check_on_every_worker(two_worker_hub: RunningHub) -> None:
    """R-GATE-02: withdraw, then 200 checks straight after on fresh connections: never allowed.

    Grant, confirm allowed, withdraw, then 200 checks all denied with reason "withdrawn";
    three times. Some checks are answered by the process that did not record it.
    """
    hub = two_worker_hub
    status, customer, _ = call(hub, "POST", "/api/v1/customers",
                               body={"email": f"ryw-{uuid.uuid4().hex[:8]}@example.com",
                                     "phone": "+4915100001111"})
    assert status == 201, customer
    cid = customer["id"]
    served_by_other = 0
    for _cycle in range(CYCLES):
        assert decide(hub, cid, True)[0] == "granted"
        confirmations = [check(hub, cid)[0] for _ in range(CONFIRMS)]
        assert all(a["allowed"] and a["reason"] == "granted" for a in confirmations)

        state, writer = decide(hub, cid, False)
        assert state == "withdrawn"
        answers = [check(hub, cid, identify=i % WHO_EVERY == 0) for i in range(CHECKS)]

        allowed = [a for a, _ in answers if a["allowed"] is not False]
        assert allowed == [], f"{len(allowed)} of {CHECKS} checks allowed after a withdrawal"
        assert Counter(a["reason"] for a, _ in answers) == {"withdrawn": CHECKS}
        if writer is not None:
            workers = Counter(w for i, (_, w) in enumerate(answers) if i % WHO_EVERY == 0)
            assert None not in workers, workers
            served_by_other += sum(n for w, n in workers.items() if w != writer)
    if PROC_TCP.exists():
        assert served_by_other > 0, "every check landed on the worker that wrote: not a test"
