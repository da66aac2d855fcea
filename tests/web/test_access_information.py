"""Art. 15 answers that fit the person: information.json, the export's page, the disclosure
log and the redaction of other people's data (R-ACC-01, R-ACC-02, R-ACC-03, R-ACC-07)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

import audit
from privacy_hub.hub import Hub
from privacy_hub.importer import import_csv
from privacy_hub.jobs.worker import Worker
from privacy_hub.models import Disclosure
from tests.conftest import SEED_EMAIL, SEED_PHONE
from tests.e2e.webhook_sink import WebhookSink
from tests.integration.test_import import row, write_csv
from tests.web.conftest import new_key
from tests.web.test_exports_api import _zip

OTHER_EMAIL = "bob.other+third@example.net"
SECTIONS = ("confirmation", "personal_data", "purposes", "categories", "recipients",
            "retention", "rights", "complaint", "source", "automated_decisions", "transfers")


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    with WebhookSink() as s:
        yield s


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _grant(client: FlaskClient, auth: dict[str, str], cid: str, purpose: str) -> None:
    resp = client.post(f"/api/v1/customers/{cid}/consents",
                       json={"purpose": purpose, "granted": True}, headers=auth)
    assert resp.status_code == 201, resp.json


def _access(client: FlaskClient, auth: dict[str, str], cid: str) -> dict[str, Any]:
    resp = client.post("/api/v1/requests", json={
        "type": "access", "customer_id": cid, "identity_verified": True,
        "verification_method": "signed_in"}, headers=auth)
    assert resp.status_code == 201, resp.json
    return dict(resp.json)


def _export(client: FlaskClient, auth: dict[str, str], request_id: str) -> dict[str, str]:
    resp = client.get(f"/api/v1/requests/{request_id}/export", headers=auth)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return _zip(resp.data)


def _systems(info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The registered systems information.json names as recipients."""
    if info["recipients"] == "none":
        return {}
    return {r["recipient"]: r for r in info["recipients"] if r["type"] == "registered system"}


def _sources(info: dict[str, Any], item: str) -> set[tuple[str, str | None]]:
    return {(s["from"], s["name"]) for s in info["source"] if s["data"] == item}


def _imported(hub: Hub, tmp_path: Path, email: str) -> str:
    write_csv(tmp_path / "partner.csv", [row(email=email, first_name="Grace")])
    assert import_csv(hub, tmp_path / "partner.csv").created == 1
    with hub.sessions() as session:
        (found,) = hub.vault.lookup(session, actor=audit.Actor("cli", "tests"), email=email)
    return found


def test_two_customers_with_different_histories_get_different_answers(
        client: FlaskClient, auth: dict[str, str], catalogue: None, hub: Hub,
        tmp_path: Path) -> None:
    """R-ACC-02: purposes, recipients and sources match each customer's own records; a
    system that read one customer's data is that customer's recipient only (R-ACC-03)."""
    gateway = _bearer(new_key(hub, "sms-gateway", ["data:read", "consents:read"]))
    ada = client.post("/api/v1/customers", json={"email": SEED_EMAIL, "phone": SEED_PHONE,
                                                  "first_name": "Ada"}, headers=auth).json["id"]
    _grant(client, auth, ada, "marketing.sms")
    read = client.get(f"/api/v1/customers/{ada}/data?purpose=marketing.sms", headers=gateway)
    assert read.status_code == 200 and read.json["data"]["phone"] == SEED_PHONE
    grace = _imported(hub, tmp_path, "grace.partner@example.com")
    _grant(client, auth, grace, "analytics.behaviour")
    # the gateway asks about Grace too, for a purpose she did not agree to: a gate answer
    assert client.get(f"/api/v1/consent-check?customer_id={grace}&purpose=marketing.sms",
                      headers=gateway).json["allowed"] is False
    hub.checklog.flush()

    ada_files = _export(client, auth, _access(client, auth, ada)["id"])
    grace_files = _export(client, auth, _access(client, auth, grace)["id"])
    ada_info = json.loads(ada_files["information.json"])
    grace_info = json.loads(grace_files["information.json"])

    ada_purposes = {p["purpose"] for p in ada_info["purposes"]}
    grace_purposes = {p["purpose"] for p in grace_info["purposes"]}
    assert "marketing.sms" in ada_purposes - grace_purposes
    assert "analytics.behaviour" in grace_purposes - ada_purposes
    sms = next(p for p in ada_info["purposes"] if p["purpose"] == "marketing.sms")
    assert sms["legal_basis"] == "consent" and sms["applies_because"] == "granted"

    assert _systems(ada_info)["sms-gateway"]["received"] == ["data_read"]
    assert _systems(ada_info)["sms-gateway"]["fields"] == ["first_name", "phone"]
    assert _systems(ada_info)["sms-gateway"]["purposes"] == ["marketing.sms"]
    assert _systems(grace_info)["sms-gateway"]["received"] == ["check"]
    assert _systems(grace_info)["sms-gateway"]["fields"] == []  # an answer, not her fields
    assert ada_info["recipients"] != grace_info["recipients"]

    assert _sources(ada_info, "email") == {("system", "test-admin")}
    assert _sources(grace_info, "email") == {("import", None)}
    assert _sources(grace_info, "first_name") == {("import", None)}
    assert "phone" in ada_info["personal_data"]["fields"]
    assert "phone" not in grace_info["personal_data"]["fields"]
    categories = {c["category"]: c for c in ada_info["categories"]}
    assert categories["contact data"]["data"] == ["email", "phone"]
    assert "marketing.sms" in categories["contact data"]["purposes"]

    for name, text in grace_files.items():  # nothing of Ada in Grace's answer
        assert SEED_EMAIL.lower() not in text.lower(), name
        assert ada not in text, name
        assert SEED_PHONE not in text, name


def test_every_mandatory_section_is_present_and_an_empty_one_says_none(
        client: FlaskClient, auth: dict[str, str]) -> None:
    """R-ACC-01: a customer nothing applies to, whom nobody received, still gets every
    section, each empty one an explicit "none"."""
    cid = client.post("/api/v1/customers", json={"email": "lone@example.org"},
                      headers=auth).json["id"]
    files = _export(client, auth, _access(client, auth, cid)["id"])
    info = json.loads(files["information.json"])
    assert set(SECTIONS) <= set(info)
    for section in ("purposes", "recipients", "transfers", "automated_decisions"):
        assert info[section] == "none", section
    assert info["confirmation"] is True and info["personal_data"]["fields"] == ["email"]
    assert info["categories"] == [  # this very request is data about them too
        {"category": "contact data", "data": ["email"], "purposes": []},
        {"category": "data subject requests", "data": ["requests"], "purposes": []}]
    assert _sources(info, "email") == {("system", "test-admin")}
    page = files["index.html"]
    for heading in ("Why we process your data", "Who received your data",
                    "Transfers outside the EU/EEA", "Automated decisions"):
        assert heading in page
    assert page.count("<p>none.</p>") == 4


def test_a_restricted_customer_is_told_only_the_purposes_still_allowed(
        client: FlaskClient, auth: dict[str, str], catalogue: None) -> None:
    """R-ACC-02: the purposes are the gate's answer now: under restriction (Art. 18) only
    legal-obligation purposes apply, whatever consents were given before."""
    cid = client.post("/api/v1/customers", json={"email": SEED_EMAIL}, headers=auth).json["id"]
    _grant(client, auth, cid, "marketing.sms")
    restricted = client.post("/api/v1/requests", json={
        "type": "restriction", "customer_id": cid, "identity_verified": True,
        "verification_method": "signed_in", "details": {"ground": "accuracy_contested"}},
        headers=auth)
    assert restricted.status_code == 201, restricted.json
    info = json.loads(_export(client, auth, _access(client, auth, cid)["id"])
                      ["information.json"])
    assert [(p["purpose"], p["legal_basis"], p["applies_because"]) for p in info["purposes"]] \
        == [("invoicing", "legal_obligation", "legal_basis")]
    assert {r["category"] for r in info["retention"]} >= {"contact data", "consent decisions"}


def test_transfers_and_automated_decisions_come_from_the_purposes_that_apply(
        client: FlaskClient, auth: dict[str, str], catalogue: None) -> None:
    """R-ACC-01, R-ACC-02 (Art. 15(1)(h), 15(2)): from the registry, for this customer's
    purposes only."""
    sharer = client.post("/api/v1/customers", json={"email": "sharer@example.org"},
                         headers=auth).json["id"]
    for purpose in ("advertising.partners", "personalisation.recommendations"):
        _grant(client, auth, sharer, purpose)
    other = client.post("/api/v1/customers", json={"email": "other@example.org"},
                        headers=auth).json["id"]
    info = json.loads(_export(client, auth, _access(client, auth, sharer)["id"])
                      ["information.json"])
    other_info = json.loads(_export(client, auth, _access(client, auth, other)["id"])
                            ["information.json"])
    assert [(t["purpose"], t["country"]) for t in info["transfers"]] == [
        ("advertising.partners", "US")]
    assert "adequacy decision" in info["transfers"][0]["safeguard"]
    assert other_info["transfers"] == "none"
    decided = {d["purpose"]: d for d in info["automated_decisions"]}
    assert set(decided) == {"fraud_prevention", "personalisation.recommendations"}
    assert decided["personalisation.recommendations"]["logic"].startswith("Products are ranked")
    assert {d["purpose"] for d in other_info["automated_decisions"]} == {"fraud_prevention"}


def test_the_disclosure_log_is_in_the_export_and_the_evidence_pack(
        client: FlaskClient, auth: dict[str, str], catalogue: None, hub: Hub,
        sink: WebhookSink) -> None:
    """R-ACC-03: data reads, delivered webhooks and gate answers, which system, which
    purpose, when; names of fields only, never their values."""
    gateway = _bearer(new_key(hub, "sms-gateway", ["data:read", "consents:read"]))
    crm = client.post("/api/v1/systems", json={"name": "crm", "scopes": ["requests:read"],
                                               "webhook_url": sink.url}, headers=auth).json
    cid = client.post("/api/v1/customers", json={"email": SEED_EMAIL, "phone": SEED_PHONE},
                      headers=auth).json["id"]
    _grant(client, auth, cid, "marketing.sms")  # consent.changed to crm
    assert client.get(f"/api/v1/customers/{cid}/data?purpose=marketing.sms",
                      headers=gateway).status_code == 200
    assert client.get(f"/api/v1/consent-check?customer_id={cid}&purpose=marketing.sms",
                      headers=gateway).json["allowed"] is True
    req = _access(client, auth, cid)  # request.created to crm, with the identifiers
    Worker(hub).run_once()
    assert {r.json["type"] for r in sink.received} == {"consent.changed", "request.created"}
    hub.checklog.flush()
    assert client.post(f"/api/v1/requests/{req['id']}/systems/crm", json={"status": "done"},
                       headers=_bearer(crm["api_key"])).json["status"] == "completed"

    files = _export(client, auth, req["id"])
    data = json.loads(files["data.json"])
    log = {(d["system"], d["kind"], d["event_type"] or d["purpose"]): d
           for d in data["disclosures"]}
    assert log[("sms-gateway", "data_read", "marketing.sms")]["fields"] == ["first_name", "phone"]
    assert log[("sms-gateway", "check", "marketing.sms")]["answer"] == "allowed"
    assert log[("crm", "webhook", "consent.changed")]["purpose"] == "marketing.sms"
    assert log[("crm", "webhook", "request.created")]["fields"] == ["email", "phone"]
    assert "disclosures.csv" in files and "request.created" in files["disclosures.csv"]
    info = json.loads(files["information.json"])
    assert _systems(info)["crm"]["received"] == ["webhook"]
    assert _systems(info)["sms-gateway"]["received"] == ["check", "data_read"]
    assert "crm" in files["index.html"] and "request.created" in files["index.html"]
    with hub.sessions() as session:
        stored = repr([(d.system, d.purpose, d.fields, d.event_type) for d in
                       session.scalars(select(Disclosure))])
    assert SEED_EMAIL.lower() not in stored.lower() and SEED_PHONE not in stored

    pack = client.get(f"/api/v1/customers/{cid}/evidence?purpose=marketing.sms", headers=auth)
    assert pack.status_code == 200
    kinds = {(d["system"], d["kind"]) for d in pack.json["disclosures"]}
    assert {("sms-gateway", "data_read"), ("sms-gateway", "check"), ("crm", "webhook")} <= kinds
    assert all(d["purpose"] == "marketing.sms" for d in pack.json["disclosures"])
    (read,) = [d for d in pack.json["disclosures"] if d["kind"] == "data_read"]
    assert read["fields"] == ["first_name", "phone"] and read["answer"] is None
    assert pack.json["disclosures_capped"] is False


def test_data_a_system_marks_as_about_other_people_stays_out_of_the_export(
        client: FlaskClient, auth: dict[str, str], hub: Hub) -> None:
    """R-ACC-07: a ticket holding another customer's address: the marked value and the
    marked message are dropped, counted, and audited by count; the rest is merged."""
    helpdesk = client.post("/api/v1/systems", json={
        "name": "helpdesk", "scopes": ["requests:read"],
        "webhook_url": "http://127.0.0.1:9/hook"}, headers=auth).json
    cid = client.post("/api/v1/customers", json={"email": SEED_EMAIL}, headers=auth).json["id"]
    req = _access(client, auth, cid)
    report = {"tickets": [{
        "id": "T-1", "subject": "Parcel late",
        "cc": {"value": OTHER_EMAIL, "third_party": True},
        "messages": [{"from": "customer", "text": "Where is my parcel?"},
                     {"from": OTHER_EMAIL, "text": "Mine is late too", "third_party": True}],
        "flags": {"third_party": False, "vip": True}}]}
    done = client.post(f"/api/v1/requests/{req['id']}/systems/helpdesk",
                       json={"status": "done", "data": report},
                       headers=_bearer(helpdesk["api_key"]))
    assert done.status_code == 200 and done.json["status"] == "completed"

    files = _export(client, auth, req["id"])
    for name, text in files.items():
        assert OTHER_EMAIL not in text, name
        assert "Mine is late too" not in text, name
    (part,) = json.loads(files["data.json"])["downstream_systems"]
    assert part["redacted_third_party"] == 2
    assert part["data"] == {"tickets": [{
        "id": "T-1", "subject": "Parcel late",
        "messages": [{"from": "customer", "text": "Where is my parcel?"}],
        "flags": {"third_party": False, "vip": True}}]}
    assert "2 item(s) about other people left out" in files["index.html"]
    with hub.sessions() as session:
        built = session.scalars(select(audit.AuditEntry).where(
            audit.AuditEntry.action == "export.built")).one()
    assert json.loads(built.details)["redacted_third_party"] == 2
    assert OTHER_EMAIL not in built.details


def test_the_report_schema_documents_how_to_mark_other_peoples_data(
        client: FlaskClient) -> None:
    """R-ACC-07: the marking is part of the contract, in the OpenAPI document."""
    spec = client.get("/api/openapi.json").json
    described = spec["components"]["schemas"]["ReportBody"]["properties"]["data"]["description"]
    assert '"third_party": true' in described
    pack = spec["components"]["schemas"]["EvidencePack"]["properties"]
    assert "disclosures" in pack
