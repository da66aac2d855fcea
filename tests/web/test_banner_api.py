"""The cookie banner's endpoints and the visitor link, through Flask's test client
(the portal issue; R-EPRIV-01/02, R-SIG-01, R-CONSENT-01)."""

from __future__ import annotations

import uuid

import pytest
from flask.testing import FlaskClient

VISITOR = str(uuid.UUID(int=7))


@pytest.fixture
def asked(client: FlaskClient, catalogue: None) -> dict[str, object]:
    resp = client.get("/consent/banner/config?lang=de")
    assert resp.status_code == 200
    return dict(resp.json)


def test_the_banner_asks_per_cookie_category_in_the_visitors_language(
        asked: dict[str, object]) -> None:
    keys = [c["key"] for c in asked["categories"]]  # type: ignore[attr-defined]
    assert keys == ["statistics", "marketing"]
    assert asked["max_age_days"] == 395  # 13 months at most
    assert asked["texts"]["reject_all"] == "Alle ablehnen"  # type: ignore[index]


def test_gpc_refuses_sale_or_sharing_whatever_the_answer_says(client: FlaskClient,
                                                               asked: object) -> None:
    """R-SIG-01: the hub honours Sec-GPC: 1 itself, not only the banner's script."""
    resp = client.post("/consent/banner/choices", headers={"Sec-GPC": "1"}, json={
        "visitor_id": VISITOR, "action": "accept_all",
        "categories": {"statistics": True, "marketing": True}})
    assert resp.status_code == 201
    assert resp.json["categories"] == {"statistics": True, "marketing": False}


def test_silence_is_no_consent_and_bad_answers_are_named(client: FlaskClient,
                                                         asked: object) -> None:
    quiet = client.post("/consent/banner/choices", json={
        "visitor_id": VISITOR, "action": "settings", "categories": {}})
    assert quiet.status_code == 201
    assert quiet.json["categories"] == {"statistics": False, "marketing": False}
    for body, field in (({"visitor_id": "nope", "action": "settings"}, "visitor_id"),
                        ({"visitor_id": VISITOR, "action": "maybe"}, "action"),
                        ({"visitor_id": VISITOR, "action": "settings",
                          "categories": {"tracking": True}}, "categories")):
        bad = client.post("/consent/banner/choices", json=body)
        assert bad.status_code == 422 and field in bad.json["errors"], bad.json
        assert bad.mimetype == "application/problem+json"


def test_only_the_shops_origins_may_ask_across_origins(client: FlaskClient,
                                                       asked: object) -> None:
    own = client.options("/consent/banner/choices",
                         headers={"Origin": "http://127.0.0.1:8000"})
    assert own.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:8000"
    other = client.options("/consent/banner/choices",
                           headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_linking_a_visitor_makes_their_answer_the_customers_consent(
        client: FlaskClient, auth: dict[str, str], customer_id: str, asked: object) -> None:
    client.post("/consent/banner/choices", json={
        "visitor_id": VISITOR, "action": "accept_all",
        "categories": {"statistics": True, "marketing": False}})
    linked = client.post(f"/api/v1/visitors/{VISITOR}/link", headers=auth,
                         json={"customer_id": customer_id})
    assert linked.status_code == 201, linked.json
    made = {i["purpose"]: i["status"] for i in linked.json["items"]}
    assert made == {"analytics.behaviour": "granted", "advertising.partners": "refused"}
    check = client.get(f"/api/v1/consent-check?customer_id={customer_id}"
                       "&purpose=analytics.behaviour", headers=auth)
    assert check.json["allowed"] is True
    history = client.get(f"/api/v1/customers/{customer_id}/consents/history", headers=auth)
    assert history.json["items"][-1]["source"] == "cookie_banner"
    nobody = client.post(f"/api/v1/visitors/{uuid.UUID(int=8)}/link", headers=auth,
                         json={"customer_id": customer_id})
    assert nobody.status_code == 201 and nobody.json["items"] == []
