"""The gate's set-based queries decide exactly as ``consent.gate.decide`` does.

Random customers (erased or not), consent states (every stored status, old versions,
expired and future expiries), restrictions, erasure flags, suppressions (R-ERASE-05) and
objections (named, all direct marketing, with compelling grounds) are written straight into the database; for
every catalogue purpose, the single check, the batch and the audience pages must give
what ``decide`` gives for the same inputs, assembled here without any SQL of the gate.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import insert, select

from audit.clock import utcnow
from consent.gate import ALL_DIRECT_MARKETING, UNKNOWN, Flags, Reason, Rule, State, decide
from consent.models import (
    ConsentState,
    CustomerRelationship,
    Objection,
    ProcessingFlags,
    PurposeRow,
)
from consent.purposes import LegalBasis
from privacy_hub.gate.checks import Checker, Reader
from privacy_hub.hub import Hub
from privacy_hub.vault.models import Customer

STATUSES = ("granted", "granted", "granted", "refused", "withdrawn", "pending_confirmation")


def _seed(hub: Hub, n: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    now = utcnow()
    with hub.engine.begin() as conn:
        purposes = {r.key: r for r in conn.execute(select(PurposeRow))}
    customers, states, flags, objections, bought = [], [], [], [], []
    for _ in range(n):
        cid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        erased = rng.random() < 0.1
        customers.append({"id": cid, "status": "erased" if erased else "active",
                          "key_version": 1, "created_at": now, "updated_at": now})
        for key, p in purposes.items():
            if rng.random() < 0.6:
                expires = rng.choice([None, None, now - timedelta(days=1),
                                      now + timedelta(days=1)])
                states.append({"customer_id": cid, "purpose": key,
                               "status": rng.choice(STATUSES),
                               "purpose_version": p.version - rng.choice([0, 0, 0, 1]),
                               "granted_at": now, "expires_at": expires, "source": "test",
                               "last_event_id": str(uuid.uuid4()), "updated_at": now})
        if rng.random() < 0.3:
            flags.append({"customer_id": cid, "restricted": rng.random() < 0.5,
                          "restriction_ground": None, "erased": rng.random() < 0.2,
                          "suppressed": rng.random() < 0.4, "updated_at": now})
        if rng.random() < 0.5:
            bought.append({"customer_id": cid, "first_purchase_at": now, "last_purchase_at": now})
        for key in rng.sample([*purposes, ALL_DIRECT_MARKETING], rng.choice([0, 0, 0, 1, 2])):
            objections.append({"customer_id": cid, "purpose": key, "created_at": now,
                               "compelling_grounds": "grounds" if rng.random() < 0.5 else None})
    with hub.engine.begin() as conn:
        conn.execute(insert(Customer.__table__), customers)
        conn.execute(insert(ConsentState.__table__), states)
        if flags:
            conn.execute(insert(ProcessingFlags.__table__), flags)
        if objections:
            conn.execute(insert(Objection.__table__), objections)
        conn.execute(insert(CustomerRelationship.__table__), bought)
    return {"purposes": purposes, "customers": customers, "states": states, "flags": flags,
            "objections": objections, "bought": {b["customer_id"] for b in bought}}


def _expected(data: dict[str, Any], key: str, now: Any) -> dict[str, Any]:
    """decide() for every seeded customer, from the seeded rows."""
    p = data["purposes"][key]
    rule = Rule(key, LegalBasis(p.legal_basis), p.version, bool(p.direct_marketing),
                bool(p.soft_opt_in))
    out = {}
    for c in data["customers"]:
        cid = c["id"]
        st = next((s for s in data["states"] if s["customer_id"] == cid and s["purpose"] == key),
                  None)
        fl = next((f for f in data["flags"] if f["customer_id"] == cid), None)
        objs = [o for o in data["objections"] if o["customer_id"] == cid]
        flags = Flags(
            exists=True, erased=c["status"] == "erased" or bool(fl and fl["erased"]),
            restricted=bool(fl and fl["restricted"]),
            objections=frozenset(o["purpose"] for o in objs),
            compelling_grounds=frozenset(o["purpose"] for o in objs
                                         if o["purpose"] == key and o["compelling_grounds"]),
            customer_relationship=cid in data["bought"],
            suppressed=bool(fl and fl["suppressed"]))
        state = None if st is None else State(st["status"], st["purpose_version"],
                                               st["expires_at"])
        out[cid] = decide(rule, state, flags, now)
    out[""] = decide(rule, None, UNKNOWN, now)
    return out


def test_checks_batches_and_audiences_agree_with_decide(hub: Hub, catalogue: None) -> None:
    data = _seed(hub, 120, seed=3)
    gate = Checker()
    ids = [c["id"] for c in data["customers"]]
    reasons = set()
    for key in data["purposes"]:
        now = utcnow()
        expected = _expected(data, key, now)
        reasons.update(a.reason for a in expected.values())
        with Reader.connect(hub.engine) as reader:
            for cid in ids:
                got = gate.decide_one(reader, cid, key, now)
                assert (got.allowed, got.reason, got.valid_until) == (
                    expected[cid].allowed, expected[cid].reason, expected[cid].valid_until), \
                    (key, cid)
            unknown = gate.decide_one(reader, str(uuid.uuid4()), key, now)
            assert unknown == expected[""]
            asked: list[str | None] = [*ids, str(uuid.uuid4()), None, ids[0]]
            many, _ = gate.decide_many(reader, asked, key, now)
            assert many == [expected.get(c or "", expected[""]) for c in asked]
            allowed = sorted(c for c in ids if expected[c].allowed)
            for limit in (1, 7, 1000):
                pages, after = [], None
                while True:
                    page, after = gate.audience_page(reader, key, now, after=after, limit=limit)
                    assert len(page) <= limit
                    pages += page
                    if after is None:
                        break
                assert pages == allowed, (key, limit)
    assert data["objections"] and data["flags"] and data["bought"]
    assert Reason.SUPPRESSED in reasons  # R-ERASE-05 on every gate path
    assert any(p.soft_opt_in for p in data["purposes"].values())


def test_the_api_answers_as_the_gatekeeper(client: FlaskClient, auth: dict[str, str],
                                           hub: Hub, catalogue: None) -> None:
    data = _seed(hub, 40, seed=5)
    ids = [c["id"] for c in data["customers"]]
    for key in ("marketing.sms", "fraud_prevention", "invoicing", "marketing.email_customers"):
        expected = _expected(data, key, utcnow())
        for cid in ids[:15]:
            body = client.get(f"/api/v1/consent-check?customer_id={cid}&purpose={key}",
                              headers=auth).json
            assert (body["allowed"], body["reason"]) == (expected[cid].allowed,
                                                         str(expected[cid].reason))
        batch = client.post("/api/v1/consent-check", headers=auth, data=json.dumps(
            {"purpose": key, "customer_ids": [*ids, "junk\"\\", ids[0]]}),
            content_type="application/json")
        assert batch.status_code == 200
        got = [(r["customer_id"], r["allowed"], r["reason"]) for r in batch.json["results"]]
        want = [(c, expected[c].allowed, str(expected[c].reason)) for c in ids]
        assert got == [*want, ("junk\"\\", False, "unknown_customer"), want[0]]
        audience = client.post("/api/v1/audiences", headers=auth,
                               json={"purpose": key, "limit": 100_000}).json
        assert audience["items"] == sorted(c for c in ids if expected[c].allowed)
        assert audience["next_cursor"] is None
