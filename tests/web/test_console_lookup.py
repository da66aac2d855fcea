"""The console's customer look-up: a reason first, the address posted and never in a URL,
the look-up audited with the reason and the staff id, personal fields only for the roles
that may see them (R-SEC-03, R-SEC-04, R-AUD-01, R-AUD-02)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

import audit
from privacy_hub.hub import Hub
from tests.conftest import SEED_EMAIL
from tests.console import csrf, make_staff, signed_in_client

PHONE = "+4915112345678"
REASON = {"reason_category": "data_subject_request",
          "reason_text": "Access request DSR-1234 received by letter"}


@pytest.fixture
def known(client: FlaskClient, auth: dict[str, str], catalogue: None,
          customer_id: str) -> dict[str, str]:
    """The seeded customer with one granted consent (so a receipt) and one request."""
    granted = client.post(f"/api/v1/customers/{customer_id}/consents",
                          json={"purpose": "marketing.email", "granted": True}, headers=auth)
    assert granted.status_code == 201, granted.json
    filed = client.post("/api/v1/requests", json={"type": "access", "email": SEED_EMAIL},
                        headers=auth)
    assert filed.status_code == 201
    return {"customer_id": customer_id, "receipt_id": granted.json["receipt_id"],
            "request_id": filed.json["id"]}


def _staff(hub: Hub, client: FlaskClient, role: str) -> tuple[FlaskClient, str]:
    member = make_staff(hub, role)
    return signed_in_client(client, member), member.id


def look_up(client: FlaskClient, identifier: str, **reason: str) -> Any:
    return client.post("/console/customers/", data={
        **(reason or REASON), "identifier": identifier,
        "csrf_token": csrf(client, "/console/customers/")})


def entries(hub: Hub, action: str) -> list[audit.AuditEntry]:
    with hub.sessions() as session:
        return list(session.scalars(select(audit.AuditEntry)
                                    .where(audit.AuditEntry.action == action)
                                    .order_by(audit.AuditEntry.seq)))


def all_details(hub: Hub) -> str:
    with hub.sessions() as session:
        return "\n".join(e.details for e in session.scalars(select(audit.AuditEntry)))


def test_a_look_up_without_a_reason_is_refused_beside_the_field(
        hub: Hub, client: FlaskClient, known: dict[str, str]) -> None:
    """R-AUD-01: no look-up without a stated reason; nothing looked up, nothing audited."""
    staff, _ = _staff(hub, client, "dpo")
    before = len(entries(hub, "customer.looked_up"))
    resp = look_up(staff, SEED_EMAIL, reason_category="", reason_text="")
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert 'id="reason_category-error"' in page and 'id="reason_text-error"' in page
    assert "Describe the reason in at least three words." in page
    short = look_up(staff, SEED_EMAIL, reason_category="complaint", reason_text="because")
    assert short.status_code == 422
    assert 'id="reason_text-error"' in short.get_data(as_text=True)
    assert len(entries(hub, "customer.looked_up")) == before


def test_an_email_address_in_the_reason_is_refused(
        hub: Hub, client: FlaskClient, known: dict[str, str]) -> None:
    """R-AUD-02: the reason is audited, so it must not carry an address."""
    staff, _ = _staff(hub, client, "dpo")
    resp = look_up(staff, SEED_EMAIL, reason_category="complaint",
                   reason_text=f"complaint mailed by {SEED_EMAIL} today")
    assert resp.status_code == 422
    assert "Leave email addresses out of the reason" in resp.get_data(as_text=True)
    assert SEED_EMAIL not in all_details(hub)


@pytest.mark.parametrize("identifier", [SEED_EMAIL.upper(), "+49 151 12345678"])
def test_a_customer_is_found_by_email_or_phone_and_opened_by_id(
        hub: Hub, client: FlaskClient, known: dict[str, str], identifier: str) -> None:
    """R-SEC-03: the match opens at a URL holding the id only."""
    staff, _ = _staff(hub, client, "agent")
    resp = look_up(staff, identifier)
    assert resp.status_code == 303
    assert resp.headers["Location"].endswith(f"/console/customers/{known['customer_id']}")
    page = staff.get(resp.headers["Location"])
    assert page.status_code == 200
    assert known["customer_id"] in page.get_data(as_text=True)


def test_the_look_up_is_audited_with_reason_and_staff_id_but_not_the_address(
        hub: Hub, client: FlaskClient, known: dict[str, str]) -> None:
    """R-AUD-01, R-AUD-02: who, why and whom (by id); never the searched value."""
    staff, staff_id = _staff(hub, client, "dpo")
    assert look_up(staff, SEED_EMAIL).status_code == 303
    entry = entries(hub, "customer.looked_up")[-1]
    details = json.loads(entry.details)
    assert (entry.actor_type, entry.actor_id) == ("staff", staff_id)
    assert entry.customer_id == known["customer_id"]
    assert details["reason_category"] == "data_subject_request"
    assert details["reason"] == REASON["reason_text"]
    assert details["by"] == "email" and details["matches"] == 1
    assert SEED_EMAIL not in entry.details and "ada" not in entry.details.lower()


def test_no_match_says_so_without_echoing_the_address_into_a_url(
        hub: Hub, client: FlaskClient, known: dict[str, str]) -> None:
    staff, _ = _staff(hub, client, "dpo")
    resp = look_up(staff, "nobody.here@example.net")
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert "No customer matched" in page
    assert "nobody.here@example.net" not in page
    assert "Location" not in resp.headers


def test_a_malformed_phone_number_is_named_beside_the_field(
        hub: Hub, client: FlaskClient, known: dict[str, str]) -> None:
    staff, _ = _staff(hub, client, "dpo")
    resp = look_up(staff, "12")
    assert resp.status_code == 422
    assert 'id="identifier-error"' in resp.get_data(as_text=True)


def test_the_dpo_sees_personal_fields_and_the_read_is_audited(
        hub: Hub, client: FlaskClient, known: dict[str, str]) -> None:
    """R-SEC-04: the DPO reads the profile; the read is audited as the API's is."""
    staff, staff_id = _staff(hub, client, "dpo")
    location = look_up(staff, SEED_EMAIL).headers["Location"]
    page = staff.get(location).get_data(as_text=True)
    assert SEED_EMAIL in page and "Ada" in page and PHONE in page
    read = entries(hub, "customer.read")[-1]
    assert (read.actor_id, read.customer_id) == (staff_id, known["customer_id"])


def test_the_auditor_sees_consents_and_requests_but_no_personal_field(
        hub: Hub, client: FlaskClient, known: dict[str, str]) -> None:
    """R-SEC-04, least privilege: ids, consents and requests; no name or contact."""
    staff, staff_id = _staff(hub, client, "auditor")
    location = look_up(staff, SEED_EMAIL).headers["Location"]
    page = staff.get(location).get_data(as_text=True)
    assert SEED_EMAIL not in page and "Ada" not in page and PHONE not in page
    assert "Newsletter and offers by email" in page  # the consent, by purpose
    assert f"/console/requests/{known['request_id']}" in page
    assert f"/receipts/{known['receipt_id']}" in page
    assert all(e.actor_id != staff_id for e in entries(hub, "customer.read"))


def test_the_customer_page_without_a_look_up_asks_for_the_reason_first(
        hub: Hub, client: FlaskClient, known: dict[str, str]) -> None:
    """A link straight to a customer opens nothing until a reason is given, and audited."""
    staff, staff_id = _staff(hub, client, "dpo")
    url = f"/console/customers/{known['customer_id']}"
    asked = staff.get(url)
    page = asked.get_data(as_text=True)
    assert asked.status_code == 200 and SEED_EMAIL not in page
    assert f"{url}/reason" in page and "Consent history" not in page
    token = csrf(staff, url)
    missing = staff.post(f"{url}/reason", data={"csrf_token": token})
    assert missing.status_code == 422
    given = staff.post(f"{url}/reason", data={**REASON, "csrf_token": token})
    assert given.status_code == 303 and given.headers["Location"].endswith(url)
    entry = entries(hub, "customer.looked_up")[-1]
    assert (entry.actor_id, entry.customer_id) == (staff_id, known["customer_id"])
    assert json.loads(entry.details)["by"] == "id"
    assert "Consent history" in staff.get(url).get_data(as_text=True)


def test_a_receipt_and_the_evidence_pack_open_after_the_look_up(
        hub: Hub, client: FlaskClient, known: dict[str, str]) -> None:
    """R-AUD-03: the signed receipt, and the evidence pack as a JSON download (audited)."""
    staff, staff_id = _staff(hub, client, "dpo")
    cid = known["customer_id"]
    before = staff.get(f"/console/customers/{cid}/evidence?purpose=marketing.email")
    assert before.status_code == 303  # not looked up yet: the reason first
    look_up(staff, SEED_EMAIL)
    receipt = staff.get(f"/console/customers/{cid}/receipts/{known['receipt_id']}")
    assert receipt.status_code == 200 and "eyJ" in receipt.get_data(as_text=True)
    pack = staff.get(f"/console/customers/{cid}/evidence?purpose=marketing.email")
    assert pack.status_code == 200
    assert "attachment" in pack.headers["Content-Disposition"]
    body = json.loads(pack.get_data(as_text=True))
    assert body["customer_id"] == cid and body["purpose"] == "marketing.email"
    assert body["receipts"] and body["receipts"][0]["verified"] is True
    assert entries(hub, "evidence.exported")[-1].actor_id == staff_id
    assert staff.get(f"/console/customers/{cid}/evidence?purpose=no.such").status_code == 404


def test_the_seeded_email_is_in_no_url_and_no_audit_detail(
        hub: Hub, client: FlaskClient, known: dict[str, str]) -> None:
    """R-SEC-03, R-AUD-02: after a whole look-up, the address is in no link and no entry."""
    staff, _ = _staff(hub, client, "dpo")
    resp = look_up(staff, SEED_EMAIL)
    urls = [resp.headers["Location"]]
    page = staff.get(urls[0]).get_data(as_text=True)
    urls += re.findall(r'(?:href|action)="([^"]*)"', page)
    assert urls and all(SEED_EMAIL not in u and "%40" not in u for u in urls)
    assert SEED_EMAIL not in all_details(hub)
