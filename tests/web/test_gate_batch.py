"""The batch check's answer, item by item (R-GATE-03): every item carries what a single
check's decision and the customer's own consent state say, whatever group of customers
sharing an answer it was made with; ids are checked as UUIDs in one pass."""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import insert, select

from audit.clock import utcnow
from consent.models import ConsentState, Objection, ProcessingFlags, PurposeRow
from privacy_hub.hub import Hub
from privacy_hub.usecases.checks import all_uuids, is_uuid
from privacy_hub.vault.models import Customer

PURPOSE = "marketing.sms"
PROOF = ("event_id", "receipt_id", "notice_version", "purpose_version")


def _seed(hub: Hub, n: int) -> list[str]:
    """Customers in every kind of state: granted with full proof, granted without a
    receipt or a notice, a notice version with braces and quotes, withdrawn, none,
    restricted, objecting, erased."""
    rng = random.Random(14)
    now = utcnow()
    with hub.engine.begin() as conn:
        version = conn.execute(select(PurposeRow.version)
                               .where(PurposeRow.key == PURPOSE)).scalar_one()
    customers, states, flags, objections = [], [], [], []
    for i in range(n):
        cid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        customers.append({"id": cid, "status": "erased" if i % 11 == 0 else "active",
                          "key_version": 1, "created_at": now, "updated_at": now})
        kind = i % 6
        if kind < 5:
            states.append({
                "customer_id": cid, "purpose": PURPOSE,
                "status": "withdrawn" if kind == 4 else "granted", "purpose_version": version,
                "granted_at": now, "expires_at": None, "source": "test",
                "last_event_id": str(uuid.uuid4()),
                "receipt_id": None if kind == 1 else str(uuid.uuid4()),
                "notice_version": ("2026-10", None, '{"x"}\\', "2026-10", None)[kind],
                "updated_at": now})
        if i % 7 == 3:
            flags.append({"customer_id": cid, "restricted": True, "restriction_ground": None,
                          "erased": False, "suppressed": False, "updated_at": now})
        if i % 9 == 5:
            objections.append({"customer_id": cid, "purpose": "*", "created_at": now})
    with hub.engine.begin() as conn:
        conn.execute(insert(Customer.__table__), customers)
        conn.execute(insert(ConsentState.__table__), states)
        conn.execute(insert(ProcessingFlags.__table__), flags)
        conn.execute(insert(Objection.__table__), objections)
    return [c["id"] for c in customers]


def _single(client: FlaskClient, auth: dict[str, str], cid: str) -> dict[str, Any]:
    resp = client.get(f"/api/v1/consent-check?customer_id={cid}&purpose={PURPOSE}",
                      headers=auth)
    assert resp.status_code == 200
    return dict(resp.json)


def test_every_batch_item_says_what_the_single_check_says(
        client: FlaskClient, auth: dict[str, str], hub: Hub, catalogue: None) -> None:
    """R-GATE-03: each item of a batch (found, unknown, not an id, asked twice) holds the
    single check's decision and proof, for customers in every kind of state."""
    ids = _seed(hub, 60)
    stranger = str(uuid.uuid4())
    asked = [*reversed(ids), stranger, 'no "id"\\', ids[5], stranger, ids[0].upper()]
    resp = client.post("/api/v1/consent-check", headers=auth,
                       data=json.dumps({"purpose": PURPOSE, "customer_ids": asked}),
                       content_type="application/json")
    assert resp.status_code == 200
    results = json.loads(resp.data)["results"]  # valid JSON, whatever the notice held
    assert [r["customer_id"] for r in results] == asked
    reasons = set()
    for cid, item in zip(asked, results, strict=True):
        single = _single(client, auth, cid) if is_uuid(cid) else {
            "allowed": False, "reason": "unknown_customer", **dict.fromkeys(PROOF)}
        assert set(item) == {"customer_id", "allowed", "reason", *PROOF}
        assert {k: item[k] for k in ("allowed", "reason", *PROOF)} == {
            k: single[k] for k in ("allowed", "reason", *PROOF)}, cid
        reasons.add(item["reason"])
    assert reasons == {"granted", "withdrawn", "not_granted", "restricted", "objected",
                       "erased", "unknown_customer"}
    assert any(r["receipt_id"] is None and r["event_id"] for r in results)
    assert any(r["notice_version"] == '{"x"}\\' for r in results)


@pytest.mark.parametrize(("ids", "expected"), [
    ([], True),
    (["0f8fad5b-d9cb-469f-a165-70867728950e", "7C9E6679-7425-40DE-944B-E07FC1F90AE7"], True),
    (["0f8fad5b-d9cb-469f-a165-70867728950e", "7c9e6679-7425-40de-944b-e07fc1f90aeg"], False),
    (["0f8fad5b-d9cb-469f-a165-70867728950e", "7c9e6679-7425-40de-944be07fc1f90ae7-"], False),
    (["0f8fad5b-d9cb-469f-a165-70867728950e0", "7c9e6679-7425-40de-944b-e07fc1f90ae"], False),
    (["0f8fad5b-d9cb-469f-a165-70867728950é"], False),
    (["0f8fad5b-d9cb-469f-a165-70867728950e,"], False),
    (["0f8fad5bd9cb469fa16570867728950e"], False),
    (["0f8fad5b-d9cb-469f-a165-70867728950e\n"[:36]], True),
    (["-f8fad5b-d9cb-469f-a165-70867728950e"], False),
])
def test_ids_are_checked_as_uuids_in_one_pass(ids: list[str], expected: bool) -> None:
    """The one-pass check agrees with checking every id on its own."""
    assert all_uuids(ids) is expected
    assert all(map(is_uuid, ids)) is expected
