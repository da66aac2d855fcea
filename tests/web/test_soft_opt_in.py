"""The soft opt-in (ePrivacy Art. 13(2), R-EPRIV-03): email offers of the shop's own
similar products reach customers who bought something, without consent, until they object.

The demo catalogue's `marketing.email_customers` is such a purpose (legitimate interests,
direct marketing); a `purchase` event makes a customer of a prospect.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient

from audit.clock import rfc3339, utcnow
from privacy_hub.hub import Hub

SOFT = "marketing.email_customers"


def _customer(client: FlaskClient, auth: dict[str, str], email: str) -> str:
    resp = client.post("/api/v1/customers", json={"email": email}, headers=auth)
    assert resp.status_code == 201, resp.json
    return str(resp.json["id"])


def _purchase(client: FlaskClient, auth: dict[str, str], cid: str, days_ago: int = 0) -> None:
    resp = client.post("/api/v1/events", headers=auth, json={"events": [{
        "customer_id": cid, "type": "purchase", "purpose": "orders.fulfilment",
        "occurred_at": rfc3339(utcnow() - timedelta(days=days_ago)),
        "properties": {"order": "A-1"}}]})
    assert resp.status_code == 200 and resp.json["accepted"] == 1, resp.json


def _check(client: FlaskClient, auth: dict[str, str], cid: str, **extra: str) -> dict[str, Any]:
    query = "".join(f"&{k}={v}" for k, v in extra.items())
    resp = client.get(f"/api/v1/consent-check?customer_id={cid}&purpose={SOFT}{query}",
                      headers=auth)
    assert resp.status_code == 200, resp.json
    return dict(resp.json)


def test_soft_opt_in_allows_customers_who_bought_and_not_prospects_or_those_who_opted_out(
        client: FlaskClient, auth: dict[str, str], hub: Hub, catalogue: None) -> None:
    """R-EPRIV-03 (a) a prospect without consent is denied, (b) a customer who bought is
    allowed on the purpose's basis, (c) one who said no at checkout is denied."""
    prospect = _customer(client, auth, "prospect@example.com")
    buyer = _customer(client, auth, "buyer@example.com")
    declined = _customer(client, auth, "declined@example.com")
    for cid in (buyer, declined):
        _purchase(client, auth, cid)
    # (c): "no" ticked at checkout, recorded as an objection to that purpose (at once)
    resp = client.post("/api/v1/requests", headers=auth, json={
        "type": "objection", "customer_id": declined, "details": {"purposes": [SOFT]}})
    assert resp.status_code == 201, resp.json

    answers = {cid: _check(client, auth, cid) for cid in (prospect, buyer, declined)}
    assert (answers[prospect]["allowed"], answers[prospect]["reason"]) == (False, "not_granted")
    assert (answers[buyer]["allowed"], answers[buyer]["reason"],
            answers[buyer]["legal_basis"]) == (True, "legal_basis", "legitimate_interests")
    assert (answers[declined]["allowed"], answers[declined]["reason"]) == (False, "objected")
    # The other email purpose still needs consent, purchase or not.
    other = client.get(f"/api/v1/consent-check?customer_id={buyer}&purpose=marketing.email",
                       headers=auth).json
    assert other["allowed"] is False

    batch = client.post("/api/v1/consent-check", headers=auth, json={
        "purpose": SOFT, "customer_ids": [prospect, buyer, declined]}).json["results"]
    assert [r["allowed"] for r in batch] == [False, True, False]
    audience = client.post("/api/v1/audiences", headers=auth, json={"purpose": SOFT}).json
    assert audience["items"] == [buyer]

    # Only the first purchase is audited as a change of what the gate answers.
    _purchase(client, auth, buyer, days_ago=3)
    entries = client.get(f"/api/v1/audit?action=processing.customer_relationship"
                         f"&customer_id={buyer}", headers=auth).json["items"]
    assert len(entries) == 1


def test_the_past_answer_follows_the_first_purchase(
        client: FlaskClient, auth: dict[str, str], catalogue: None) -> None:
    """R-CONSENT-07 for the soft opt-in: before the customer bought anything, denied."""
    cid = _customer(client, auth, "later@example.com")
    before = rfc3339(utcnow())
    _purchase(client, auth, cid)
    assert _check(client, auth, cid, at=before.replace("+", "%2B"))["allowed"] is False
    assert _check(client, auth, cid)["allowed"] is True


def test_soft_opt_in_is_only_for_own_direct_marketing_on_legitimate_interests(
        client: FlaskClient, auth: dict[str, str], catalogue: None) -> None:
    """R-EPRIV-03 (d): no soft opt-in for partners' products (sale or sharing), nor on
    consent, nor for anything but direct marketing; and it never changes (409)."""
    base = {"key": "marketing.partners_email", "title": "Partner offers", "retention_days": 30,
            "legal_basis": "legitimate_interests", "lia_ref": "LIA-1", "direct_marketing": True,
            "soft_opt_in": True, "description": "Offers of our partners",
            "data_categories": ["contact data"]}
    for change in ({"sale_or_sharing": True}, {"legal_basis": "consent", "lia_ref": None},
                   {"direct_marketing": False}):
        resp = client.post("/api/v1/purposes", json={**base, **change}, headers=auth)
        assert resp.status_code == 422 and list(resp.json["errors"]) == ["soft_opt_in"], change
    assert client.post("/api/v1/purposes", json=base, headers=auth).status_code == 201
    resp = client.patch(f"/api/v1/purposes/{SOFT}", json={"soft_opt_in": False}, headers=auth)
    assert resp.status_code == 409
    assert client.get(f"/api/v1/purposes/{SOFT}", headers=auth).json["soft_opt_in"] is True
