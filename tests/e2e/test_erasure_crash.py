"""A crash in the middle of erasures (issue 4): nothing is half-erased, the chain verifies.

Erasure requests are submitted by DPO keys (identity already verified), so the hub's part
runs inside the request; the server is SIGKILLed while they run and restarted.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests

from tests.conftest import SEED_EMAIL
from tests.e2e.live import LiveHub

pytestmark = pytest.mark.slow


def _customers(hub: LiveHub, n: int) -> list[str]:
    ids = []
    for i in range(n):
        resp = requests.post(hub.url("/api/v1/customers"), headers=hub.headers, timeout=10, json={
            "email": f"erase{i}.{SEED_EMAIL}", "first_name": "Erin", "last_name": f"Seed{i}",
            "address": {"city": "Berlin", "country": "DE"}})
        cid = resp.json()["id"]
        requests.post(hub.url(f"/api/v1/customers/{cid}/consents"), headers=hub.headers,
                      timeout=10, json={"purpose": "marketing.sms", "granted": True})
        ids.append(cid)
    return ids


def test_sigkill_during_erasures_leaves_nothing_half_erased(live_hub: LiveHub) -> None:
    hub = live_hub
    hub.start()
    ids = _customers(hub, 40)
    acknowledged: dict[str, str] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def erase(chunk: list[str]) -> None:
        for cid in chunk:
            if stop.is_set():
                return
            try:
                resp = requests.post(hub.url("/api/v1/requests"), headers=hub.headers, timeout=10,
                                     json={"type": "erasure", "customer_id": cid,
                                           "identity_verified": True,
                                           "verification_method": "signed_in"})
            except requests.RequestException:
                return
            if resp.status_code == 201:
                with lock:
                    acknowledged[cid] = resp.json()["id"]

    threads = [threading.Thread(target=erase, args=(ids[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    hub.kill()
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert 0 < len(acknowledged) < len(ids), "the kill must land in the middle of the erasures"

    hub.restart()
    states: dict[str, Any] = {}
    for cid in ids:
        got = requests.get(hub.url(f"/api/v1/customers/{cid}"), headers=hub.headers, timeout=10)
        assert got.status_code == 200
        states[cid] = got.json()
        gate = requests.get(hub.url(f"/api/v1/consent-check?customer_id={cid}&purpose=marketing.sms"),
                            headers=hub.headers, timeout=10).json()
        if states[cid]["status"] == "erased":
            # Wholly erased: a tombstone, denied everywhere, the key gone.
            assert set(states[cid]) == {"id", "status", "erased_at"}
            assert gate["reason"] == "erased"
        else:
            # Wholly untouched: every field still decrypts, the consent still counts.
            assert states[cid]["last_name"].startswith("Seed") and gate["allowed"] is True
    for cid, rid in acknowledged.items():
        assert states[cid]["status"] == "erased", "an acknowledged erasure was lost"
        req = requests.get(hub.url(f"/api/v1/requests/{rid}"), headers=hub.headers, timeout=10).json()
        assert req["status"] == "completed"
        assert [k["purpose"] for k in req["outcome"]["kept"]] == ["invoicing"]
    verify = hub.cli("audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    ok = requests.get(hub.url("/api/v1/audit/verify"), headers=hub.headers, timeout=30).json()
    assert ok["ok"] is True
    logs = hub.logs()
    assert SEED_EMAIL not in logs and "Seed1" not in logs
