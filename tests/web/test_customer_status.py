"""A customer's status (API.md "Customers": `active`, `restricted`, `erased`) follows a
restriction (Art. 18) from its verification until it is lifted, wherever it is shown: the
API's profile, the evidence pack, the console's customer page and the portal (R-GATE-06,
R-RRO-02)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient

from privacy_hub.hub import Hub
from tests.conftest import SEED_EMAIL
from tests.console import csrf, make_staff, signed_in_client

TOKEN = "t0ken-for-status-tests-aaaaaaaaaaaaaaaaaaaaaaaaa"
REASON = {"reason_category": "data_subject_request",
          "reason_text": "Restriction request received by letter"}


def status(client: FlaskClient, auth: dict[str, str], cid: str) -> str:
    resp = client.get(f"/api/v1/customers/{cid}", headers=auth)
    assert resp.status_code == 200, resp.json
    return str(resp.json["status"])


def restrict(client: FlaskClient, auth: dict[str, str], cid: str) -> str:
    """A restriction request, received, then verified by the DPO: its id."""
    made = client.post("/api/v1/requests", json={
        "type": "restriction", "customer_id": cid,
        "details": {"ground": "accuracy_contested"}}, headers=auth)
    assert made.status_code == 201, made.json
    assert made.json["status"] == "pending_verification"
    assert status(client, auth, cid) == "active"  # not before it is verified
    verified = client.post(f"/api/v1/requests/{made.json['id']}/verify",
                           json={"method": "id_document_checked"}, headers=auth)
    assert verified.status_code == 200, verified.json
    return str(made.json["id"])


def lift(client: FlaskClient, auth: dict[str, str], cid: str) -> Any:
    return client.post(f"/api/v1/customers/{cid}/restriction/lift",
                       json={"note": "accuracy checked and confirmed"}, headers=auth)


def test_a_verified_restriction_shows_restricted_until_it_is_lifted(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str) -> None:
    """R-GATE-06: restricted once verified, in every answer that carries the profile;
    R-RRO-02: active again once lifted."""
    restrict(client, auth, customer_id)
    assert status(client, auth, customer_id) == "restricted"
    patched = client.patch(f"/api/v1/customers/{customer_id}", json={"first_name": "Ada"},
                           headers=auth)
    assert patched.status_code == 200 and patched.json["status"] == "restricted"
    upserted = client.post("/api/v1/customers", json={"email": SEED_EMAIL, "last_name": "L"},
                           headers=auth)
    assert upserted.status_code == 200 and upserted.json["status"] == "restricted"
    pack = client.get(f"/api/v1/customers/{customer_id}/evidence?purpose=marketing.sms",
                      headers=auth)
    assert pack.status_code == 200 and pack.json["customer_status"] == "restricted"

    lifted = lift(client, auth, customer_id)
    assert lifted.status_code == 200 and lifted.json["restricted"] is False
    assert status(client, auth, customer_id) == "active"
    pack = client.get(f"/api/v1/customers/{customer_id}/evidence?purpose=marketing.sms",
                      headers=auth)
    assert pack.json["customer_status"] == "active"
    assert lift(client, auth, customer_id).status_code == 409  # nothing left to lift


def test_an_erased_customer_stays_erased_even_under_restriction(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str) -> None:
    restrict(client, auth, customer_id)
    erased = client.delete(f"/api/v1/customers/{customer_id}", headers=auth)
    assert erased.status_code == 200 and erased.json["status"] == "erased"
    assert status(client, auth, customer_id) == "erased"


@pytest.mark.parametrize("role", ["agent", "dpo"])
def test_the_console_customer_page_says_processing_is_restricted(
        hub: Hub, client: FlaskClient, auth: dict[str, str], catalogue: None,
        customer_id: str, role: str) -> None:
    """The agent (no personal fields) and the DPO (the full profile) both see the status."""
    staff = signed_in_client(client, make_staff(hub, role))
    url = f"/console/customers/{customer_id}"

    def shown() -> str:
        staff.post(f"{url}/reason", data={**REASON, "csrf_token": csrf(staff, url)})
        page = staff.get(url).get_data(as_text=True)
        assert "Consent history" in page
        return page

    assert "processing restricted" not in shown()
    restrict(client, auth, customer_id)
    assert "processing restricted" in shown()
    assert lift(client, auth, customer_id).status_code == 200
    assert "processing restricted" not in shown()


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', page)
    assert match, page[:500]
    return match.group(1)


def test_the_portal_tells_the_customer_their_data_is_restricted(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("privacy_hub.usecases.sign_in.secrets.token_urlsafe", lambda _n: TOKEN)
    portal = client.application.test_client()
    start = portal.get("/portal/").get_data(as_text=True)
    assert portal.post("/portal/", data={"email": SEED_EMAIL,
                                         "csrf_token": _csrf(start)}).status_code == 200
    confirm = portal.get(f"/portal/sign-in/confirm?token={TOKEN}").get_data(as_text=True)
    assert portal.post("/portal/sign-in/confirm", data={
        "token": TOKEN, "csrf_token": _csrf(confirm)}).status_code == 303
    assert 'id="restricted-notice"' not in portal.get("/portal/data").get_data(as_text=True)
    restrict(client, auth, customer_id)
    assert 'id="restricted-notice"' in portal.get("/portal/data").get_data(as_text=True)
    assert lift(client, auth, customer_id).status_code == 200
    assert 'id="restricted-notice"' not in portal.get("/portal/data").get_data(as_text=True)
