"""The suppression list (R-ERASE-05; Art. 17, 21(3), 5(1)(c), 5(2) GDPR): an erasure or an
objection to direct marketing leaves a keyed hash of each email and phone, and a customer
made again with one (import, API) is denied every direct-marketing purpose, with reason
``suppressed``, until they consent to direct marketing themselves."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import delete, inspect, select

import audit
from audit.clock import rfc3339, utcnow
from consent.models import SuppressionEntry
from privacy_hub.hub import Hub
from privacy_hub.importer import import_csv
from privacy_hub.vault.keystore import HubKey
from tests.conftest import SEED_EMAIL, SEED_PHONE
from tests.console import make_staff, signed_in_client
from tests.hubs import make_settings
from tests.web.test_consent_api import _token_from_outbox

DIRECT_MARKETING = ("marketing.email", "marketing.sms", "marketing.email_customers",
                    "advertising.partners")


def _check(client: FlaskClient, auth: dict[str, str], cid: str, purpose: str,
           **query: str) -> Any:
    resp = client.get("/api/v1/consent-check", headers=auth,
                      query_string={"customer_id": cid, "purpose": purpose, **query})
    assert resp.status_code == 200, resp.json
    return resp.json


def _grant(client: FlaskClient, auth: dict[str, str], cid: str, purpose: str,
           method: str) -> Any:
    resp = client.post(f"/api/v1/customers/{cid}/consents", headers=auth,
                       json={"purpose": purpose, "granted": True, "collection_method": method})
    assert resp.status_code == 201, resp.json
    return resp.json


def _create(client: FlaskClient, auth: dict[str, str], **fields: Any) -> str:
    resp = client.post("/api/v1/customers", json=fields, headers=auth)
    assert resp.status_code == 201, resp.json
    return str(resp.json["id"])


def _lookup(client: FlaskClient, auth: dict[str, str], email: str) -> list[str]:
    resp = client.post("/api/v1/customers/lookup", json={"email": email}, headers=auth)
    assert resp.status_code == 200
    return [i["id"] for i in resp.json["items"]]


def _entries(hub: Hub) -> list[dict[str, Any]]:
    with hub.sessions() as s:
        return [dict(r._mapping) for r in s.execute(select(SuppressionEntry.__table__))]


def _audit(hub: Hub) -> list[audit.AuditEntry]:
    with hub.sessions() as s:
        return list(s.scalars(select(audit.AuditEntry).order_by(audit.AuditEntry.seq)))


def _partner_feed(hub: Hub, tmp_path: Path, email: str, phone: str) -> None:
    """The partner import feed: `privacy-hub import` of one CSV row."""
    path = tmp_path / "partner.csv"
    path.write_text(f'email,phone,first_name\n"{email}","{phone}",Ada\n', encoding="utf-8")
    report = import_csv(hub, path)
    assert (report.created, report.rejected) == (1, [])


def test_a_reimported_erased_email_is_suppressed_until_the_customer_consents_themselves(
        client: FlaskClient, auth: dict[str, str], catalogue: None, hub: Hub, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """R-ERASE-05 acceptance: erase; re-import the same email (cased and spaced otherwise)
    through the partner feed -> check(marketing.email) = deny, `suppressed`; the list holds
    only hash + date + reason; the customer's own consent -> allowed and the entries gone;
    the seeded email is nowhere in the list, the audit details or the logs."""
    caplog.set_level(logging.DEBUG)
    old = _create(client, auth, email=SEED_EMAIL, phone=SEED_PHONE, first_name="Ada")
    assert client.delete(f"/api/v1/customers/{old}", headers=auth).status_code == 200

    columns = {c["name"] for c in inspect(hub.engine).get_columns("suppression_list")}
    assert columns == {"identifier_hash", "suppressed_on", "reason"}
    entries = _entries(hub)
    assert [e["reason"] for e in entries] == ["erased", "erased"]  # one per identifier
    with hub.sessions() as s:
        own_key = hub.keyring.hub_key(s, "suppression")
        assert own_key != hub.keyring.hub_key(s, "blind_index")
    assert {bytes(e["identifier_hash"]) for e in entries} == set(
        hub.vault.suppression.hashes({"email": SEED_EMAIL, "phone": SEED_PHONE}))  # type: ignore[union-attr]

    _partner_feed(hub, tmp_path, f"  {SEED_EMAIL.upper()} ", "+49 151 12345678")
    (new,) = _lookup(client, auth, SEED_EMAIL)
    assert new != old
    for purpose in DIRECT_MARKETING:
        answer = _check(client, auth, new, purpose)
        assert (answer["allowed"], answer["reason"]) == (False, "suppressed"), purpose
    assert _check(client, auth, new, "analytics.behaviour")["reason"] == "not_granted"
    assert _check(client, auth, new, "orders.fulfilment")["allowed"] is True
    batch = client.post("/api/v1/consent-check", headers=auth,
                        json={"purpose": "marketing.email", "customer_ids": [new]}).json
    assert [{k: r[k] for k in ("customer_id", "allowed", "reason", "event_id")}
            for r in batch["results"]] == [
        {"customer_id": new, "allowed": False, "reason": "suppressed", "event_id": None}]

    # A consent that came through a feed is not the customer's own: nothing lifts.
    assert _grant(client, auth, new, "marketing.sms", "partner_import")["status"] == "granted"
    assert _check(client, auth, new, "marketing.sms")["reason"] == "suppressed"
    audience = client.post("/api/v1/audiences", headers=auth,
                           json={"purpose": "marketing.sms"}).json
    assert new not in audience["items"]
    assert len(_entries(hub)) == 2
    suppressed_then = rfc3339(utcnow())

    # The customer's own consent (double opt-in: it counts once they confirm).
    assert _grant(client, auth, new, "marketing.email", "web_form")["status"] == \
        "pending_confirmation"
    assert _check(client, auth, new, "marketing.email")["reason"] == "suppressed"
    confirmed = client.post("/api/v1/consents/confirm", json={"token": _token_from_outbox(hub)})
    assert confirmed.status_code == 200 and confirmed.json["status"] == "granted"
    answer = _check(client, auth, new, "marketing.email")
    assert (answer["allowed"], answer["reason"]) == (True, "granted")
    assert new in client.post("/api/v1/audiences", headers=auth,
                              json={"purpose": "marketing.email"}).json["items"]
    assert _entries(hub) == []
    then = _check(client, auth, new, "marketing.email", at=suppressed_then)
    assert then["reason"] == "suppressed"  # the answer that held then (flag history)

    evidence = client.get(f"/api/v1/customers/{new}/evidence", headers=auth,
                          query_string={"purpose": "marketing.email"}).json
    assert [f["kind"] for f in evidence["processing_flags"]] == ["suppressed",
                                                                  "suppression_lifted"]
    analytics = client.get(f"/api/v1/customers/{new}/evidence", headers=auth,
                           query_string={"purpose": "analytics.behaviour"}).json
    assert analytics["processing_flags"] == []

    entries_log = _audit(hub)
    actions = [e.action for e in entries_log]
    for action in ("suppression.added", "suppression.applied", "suppression.lifted"):
        assert action in actions
    lifted = next(e for e in entries_log if e.action == "suppression.lifted")
    assert (lifted.customer_id, json.loads(lifted.details)["entries"]) == (new, 2)
    added = next(e for e in entries_log if e.action == "suppression.added")
    assert added.customer_id is None  # no link to the erased customer
    hashes = [h.hex() for h in hub.vault.suppression.hashes(  # type: ignore[union-attr]
        {"email": SEED_EMAIL, "phone": SEED_PHONE})]
    for entry in entries_log:
        details = entry.details.lower()
        assert SEED_EMAIL not in details and SEED_PHONE not in details
        assert not any(h in details for h in hashes)
    assert SEED_EMAIL not in caplog.text.lower() and SEED_PHONE not in caplog.text


def test_the_list_stores_no_identifier_and_a_differently_written_one_still_matches(
        client: FlaskClient, auth: dict[str, str], catalogue: None, hub: Hub) -> None:
    """R-ERASE-05: normalisation as the vault's (email case and spaces, phone to E.164 with
    the address country): a customer created through the API with the same identifiers
    written otherwise is suppressed; the list's cells hold neither identifier."""
    old = _create(client, auth, email=SEED_EMAIL, phone=SEED_PHONE)
    assert client.delete(f"/api/v1/customers/{old}", headers=auth).status_code == 200
    for entry in _entries(hub):
        cells = b"".join(v if isinstance(v, bytes) else str(v).encode() for v in entry.values())
        assert SEED_EMAIL.encode() not in cells and SEED_PHONE.encode() not in cells

    by_email = _create(client, auth, email=f" {SEED_EMAIL.title()}")
    by_phone = _create(client, auth, email="someone.else@example.org", phone="0151 12345678",
                       address={"country": "DE"})
    stranger = _create(client, auth, email="stranger@example.org", phone="+4915199999999")
    for cid in (by_email, by_phone):
        assert _check(client, auth, cid, "marketing.sms")["reason"] == "suppressed"
    assert _check(client, auth, stranger, "marketing.sms")["reason"] == "not_granted"
    assert _check(client, auth, stranger, "marketing.email_customers")["reason"] == "not_granted"


def test_an_objection_to_direct_marketing_lists_the_identifiers(
        client: FlaskClient, auth: dict[str, str], catalogue: None, hub: Hub) -> None:
    """R-ERASE-05, Art. 21(3): an objection to direct marketing adds entries with reason
    objected_direct_marketing; another customer made with that phone is suppressed; an
    objection to a purpose that is no direct marketing lists nothing."""
    cid = _create(client, auth, email=SEED_EMAIL, phone=SEED_PHONE)
    other = client.post("/api/v1/requests", headers=auth, json={
        "type": "objection", "customer_id": cid, "details": {"purposes": ["fraud_prevention"]},
        "identity_verified": True, "verification_method": "phone_call"})
    assert other.status_code == 201, other.json
    assert _entries(hub) == []
    objection = client.post("/api/v1/requests", headers=auth, json={
        "type": "objection", "customer_id": cid, "identity_verified": True,
        "verification_method": "phone_call"})
    assert objection.status_code == 201, objection.json
    assert sorted(e["reason"] for e in _entries(hub)) == ["objected_direct_marketing"] * 2

    again = _create(client, auth, email="new.address@example.org", phone=SEED_PHONE)
    assert _check(client, auth, again, "marketing.email")["reason"] == "suppressed"
    assert _check(client, auth, cid, "marketing.email")["reason"] == "objected"


def test_an_existing_instance_gets_its_suppression_key_on_its_next_start(
        tmp_path: Path, db_url: str) -> None:
    """An instance made before the list existed has no `suppression` hub key: the next
    start (no `init`) creates it, audited, and later starts load the same key."""
    from tests.hubs import make_hub

    first = make_hub(tmp_path, db_url)
    with first.sessions.begin() as s:
        s.execute(delete(HubKey).where(HubKey.name == "suppression"))
    first.close()

    settings = make_settings(tmp_path, db_url)
    second = Hub.open(settings)
    with second.sessions() as s:
        key = second.keyring.hub_key(s, "suppression")
        created = [json.loads(e.details) for e in s.scalars(
            select(audit.AuditEntry).where(audit.AuditEntry.action == "key.created"))]
    second.close()
    assert {"kind": "hub_key", "name": "suppression"} in created
    third = Hub.open(settings)
    with third.sessions() as s:
        assert third.keyring.hub_key(s, "suppression") == key
    third.close()


def test_the_list_is_in_the_records_of_processing_and_counted_never_listed(
        client: FlaskClient, auth: dict[str, str], catalogue: None, hub: Hub) -> None:
    """R-ERASE-05 (documented in the ROPA, Art. 30(1)); the console's figures count the
    entries per reason; no API reveals an entry: the OpenAPI document has no path for it,
    and documents the gate's `suppressed` reason."""
    old = _create(client, auth, email=SEED_EMAIL, phone=SEED_PHONE)
    client.delete(f"/api/v1/customers/{old}", headers=auth)
    ropa = client.get("/api/v1/ropa", headers=auth).json
    (activity,) = [a for a in ropa["activities"] if a["purpose"] == "suppression_list"]
    assert "17(3)(b)" in activity["legal_basis_detail"] and "21(3)" in activity["legal_basis_detail"]
    assert "6(1)(c)" in activity["legal_basis_detail"] and "6(1)(f)" in activity["legal_basis_detail"]
    assert any("hash" in c for c in activity["categories_of_personal_data"])
    assert activity["retention"] and activity["security_measures"]
    assert "suppression_list" in client.get("/api/v1/ropa?format=csv", headers=auth).text

    staff = signed_in_client(client, make_staff(hub, "auditor"))
    page = staff.get("/console/figures/").get_data(as_text=True)
    table = page[page.index('id="suppression-table"'):]
    table = table[:table.index("</table>")]
    assert re.search(r"Erased \(Art\. 17\)</th><td class=\"num\">2</td>", table), table
    figures_csv = staff.get("/console/figures/figures.csv").get_data(as_text=True)
    assert "suppression_list,erased,,entries_now,2" in figures_csv
    assert "suppression_list,objected_direct_marketing,,entries_now,0" in figures_csv
    for h in hub.vault.suppression.hashes({"email": SEED_EMAIL}):  # type: ignore[union-attr]
        assert h.hex() not in page and SEED_EMAIL not in page

    spec = client.get("/api/openapi.json").json
    assert not [p for p in spec["paths"] if "suppress" in p]
    reasons = spec["components"]["schemas"]["CheckResult"]["properties"]["reason"]["enum"]
    assert "suppressed" in reasons
