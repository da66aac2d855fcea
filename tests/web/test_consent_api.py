"""Recording consent with proof (API.md "Consent"; R-CONSENT, R-CREC, R-SIG-01)."""

from __future__ import annotations

import json
from typing import Any

from flask.testing import FlaskClient

from consent.receipts import ReceiptInvalid, verify
from privacy_hub.hub import Hub
from tests.conftest import SEED_EMAIL
from tests.web.conftest import new_key


def record(client: FlaskClient, auth: dict[str, str], cid: str, **body: Any) -> Any:
    return client.post(f"/api/v1/customers/{cid}/consents", json=body, headers=auth)


def states(client: FlaskClient, auth: dict[str, str], cid: str) -> dict[str, str]:
    items = client.get(f"/api/v1/customers/{cid}/consents", headers=auth).json["items"]
    return {i["purpose"]: i["status"] for i in items}


def check(client: FlaskClient, auth: dict[str, str], cid: str, purpose: str) -> Any:
    return client.get(f"/api/v1/consent-check?customer_id={cid}&purpose={purpose}",
                      headers=auth).json


def test_grant_then_withdraw_and_history_keeps_both(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str) -> None:
    """R-CONSENT-07: withdrawal stops processing; history keeps grant and withdrawal."""
    granted = record(client, auth, customer_id, purpose="personalisation.recommendations",
                     granted=True, collection_method="web_form")
    assert granted.status_code == 201
    assert granted.json["status"] == "granted" and granted.json["receipt_id"]
    assert check(client, auth, customer_id, "personalisation.recommendations")["allowed"] is True
    withdrawn = record(client, auth, customer_id, purpose="personalisation.recommendations",
                       granted=False)
    assert withdrawn.json["status"] == "withdrawn"
    assert check(client, auth, customer_id, "personalisation.recommendations")["reason"] == "withdrawn"
    history = client.get(f"/api/v1/customers/{customer_id}/consents/history", headers=auth).json
    assert [e["status"] for e in history["items"]] == ["granted", "withdrawn"]
    assert history["items"][0]["source"] == "test-admin"


def test_refusal_without_consent_is_refused_not_withdrawn(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str) -> None:
    """R-CONSENT-08: refusal is stored as its own state."""
    resp = record(client, auth, customer_id, purpose="marketing.sms", granted=False)
    assert resp.json["status"] == "refused"
    assert states(client, auth, customer_id)["marketing.sms"] == "refused"
    assert states(client, auth, customer_id)["analytics.behaviour"] == "not_set"


def test_each_decision_keeps_its_iso_27560_fields(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str) -> None:
    """R-CREC-01: who, when, what, notice version and language, how, evidence, actor."""
    client.post("/api/v1/notices", json={"version": "2026-10", "language": "de", "text": "Hinweis"},
                headers=auth)
    record(client, auth, customer_id, purpose="analytics.behaviour", granted=True,
           source="checkout", collection_method="web_form", notice_version="2026-10",
           language="de", collected_at="2026-11-01T10:00:00Z",
           evidence={"ip_address": "203.0.113.7", "user_agent": "Firefox/140",
                     "ui_element": "cookie-banner-v3"})
    (event,) = client.get(f"/api/v1/customers/{customer_id}/consents/history", headers=auth).json["items"]
    assert event["source"] == "checkout" and event["collection_method"] == "web_form"
    assert event["notice_version"] == "2026-10" and event["notice_language"] == "de"
    assert len(event["notice_sha256"]) == 64
    assert event["collected_at"] == "2026-11-01T10:00:00Z"
    assert event["evidence"]["user_agent"] == "Firefox/140"
    assert "ip_address" not in event["evidence"] and len(event["evidence"]["ip_hash"]) == 32
    assert "203.0.113.7" not in json.dumps(event)
    assert event["actor"] == {"type": "system", "id": "test-admin"}
    assert event["purpose_version"] == 1


def test_recording_for_a_non_consent_purpose_is_422(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str) -> None:
    resp = record(client, auth, customer_id, purpose="orders.fulfilment", granted=True)
    assert resp.status_code == 422 and "purpose" in resp.json["errors"]
    assert record(client, auth, customer_id, purpose="nope", granted=True).status_code == 422
    assert record(client, auth, customer_id, purpose="marketing.sms").status_code == 422
    unknown_notice = record(client, auth, customer_id, purpose="marketing.sms", granted=True,
                            notice_version="1999")
    assert "notice_version" in unknown_notice.json["errors"]


def test_batch_is_atomic_and_names_each_bad_index(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str) -> None:
    url = f"/api/v1/customers/{customer_id}/consents:batch"
    bad = client.post(url, json={"decisions": [
        {"purpose": "marketing.sms", "granted": True},
        {"purpose": "orders.fulfilment", "granted": True},
        {"purpose": "nope", "granted": False}]}, headers=auth)
    assert bad.status_code == 422
    assert set(bad.json["errors"]) == {"decisions.1.purpose", "decisions.2.purpose"}
    assert states(client, auth, customer_id)["marketing.sms"] == "not_set"  # nothing recorded
    ok = client.post(url, json={"decisions": [
        {"purpose": "marketing.sms", "granted": True},
        {"purpose": "analytics.behaviour", "granted": False}]}, headers=auth)
    assert ok.status_code == 201 and [i["status"] for i in ok.json["items"]] == ["granted", "refused"]


def test_ledger_rows_cannot_be_changed_or_deleted(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str) -> None:
    """R-CREC-03: PUT and DELETE on the ledger are 405."""
    event_id = record(client, auth, customer_id, purpose="marketing.sms", granted=True).json["id"]
    for method in (client.put, client.delete, client.patch):
        for path in (f"/api/v1/customers/{customer_id}/consents",
                     f"/api/v1/customers/{customer_id}/consents/{event_id}",
                     f"/api/v1/customers/{customer_id}/consents/history"):
            assert method(path, json={}, headers=auth).status_code == 405, path
    assert client.get(f"/api/v1/customers/{customer_id}/consents/{event_id}",
                      headers=auth).status_code == 200


def test_receipt_verifies_offline_and_fails_after_one_changed_byte(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str) -> None:
    """R-CREC-04: a signed Kantara / ISO 27560 receipt, verifiable with the public key alone."""
    receipt_id = record(client, auth, customer_id, purpose="analytics.behaviour",
                        granted=True).json["receipt_id"]
    got = client.get(f"/api/v1/receipts/{receipt_id}", headers=auth).json
    jwks = client.get("/api/v1/keys/receipts").json  # public, no key
    assert jwks["keys"][0]["kty"] == "OKP" and jwks["keys"][0]["crv"] == "Ed25519"
    receipt = verify(got["jws"], jwks)
    assert receipt == got["receipt"]
    for field in ("version", "jurisdiction", "consentTimestamp", "collectionMethod",
                  "consentReceiptID", "piiPrincipalId", "piiControllers", "policyUrl",
                  "services", "sensitive", "spiCat"):
        assert field in receipt, field
    assert receipt["consentReceiptID"] == receipt_id and receipt["piiPrincipalId"] == customer_id
    assert SEED_EMAIL not in got["jws"]
    header, payload, signature = got["jws"].split(".")
    flipped = payload[:10] + ("A" if payload[10] != "A" else "B") + payload[11:]
    try:
        verify(f"{header}.{flipped}.{signature}", jwks)
        raise AssertionError("a changed payload verified")
    except ReceiptInvalid:
        pass


def test_special_category_needs_explicit_consent(
        client: FlaskClient, auth: dict[str, str], customer_id: str) -> None:
    """R-CONSENT-11."""
    client.post("/api/v1/purposes", json={"key": "health.tips", "title": "Health tips",
                                          "legal_basis": "consent", "special_category": True,
                                          "description": "Tips for your health",
                                          "data_categories": ["health data"],
                                          "retention_days": 30}, headers=auth)
    regular = record(client, auth, customer_id, purpose="health.tips", granted=True)
    assert regular.status_code == 422 and "consent_type" in regular.json["errors"]
    explicit = record(client, auth, customer_id, purpose="health.tips", granted=True,
                      consent_type="explicit")
    assert explicit.status_code == 201


def test_double_opt_in_counts_only_after_the_link(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str,
        hub: Hub) -> None:
    """API.md: double opt-in; the confirmation token is single-use."""
    resp = record(client, auth, customer_id, purpose="marketing.email", granted=True)
    assert resp.json["status"] == "pending_confirmation"
    assert check(client, auth, customer_id, "marketing.email")["reason"] == "pending_confirmation"
    token = _token_from_outbox(hub)
    confirmed = client.post("/api/v1/consents/confirm", json={"token": token})
    assert confirmed.status_code == 200 and confirmed.json["status"] == "granted"
    assert check(client, auth, customer_id, "marketing.email")["allowed"] is True
    again = client.post("/api/v1/consents/confirm", json={"token": token})
    assert again.status_code == 422
    assert client.post("/api/v1/consents/confirm", json={"token": "x" * 40}).status_code == 422


def _token_from_outbox(hub: Hub) -> str:
    """The one-time token, as the mail job will send it (read back from the sealed job)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from sqlalchemy import select

    from privacy_hub.jobs.outbox import OutboxJob, open_payload

    with hub.sessions() as session:
        aead = AESGCM(hub.keyring.hub_key(session, "app_secrets"))
        jobs = [open_payload(aead, j.id, j.payload_ct) for j in session.scalars(
            select(OutboxJob).where(OutboxJob.kind == "mail").order_by(OutboxJob.created_at))
            if j.payload_ct is not None]
    tokens = [j["secrets"]["token"] for j in jobs if j["template"] == "consent_confirmation"]
    assert tokens, jobs
    return str(tokens[-1])


def test_gpc_refuses_every_sale_or_sharing_purpose(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str) -> None:
    """R-SIG-01: Sec-GPC: 1 (exactly "1") refuses sale/sharing until granted again."""
    record(client, auth, customer_id, purpose="advertising.partners", granted=True)
    assert check(client, auth, customer_id, "advertising.partners")["allowed"] is True
    ignored = client.post(f"/api/v1/customers/{customer_id}/consents",
                          json={"purpose": "analytics.behaviour", "granted": True},
                          headers={**auth, "Sec-GPC": "true"})
    assert ignored.status_code == 201
    assert check(client, auth, customer_id, "advertising.partners")["allowed"] is True
    client.post(f"/api/v1/customers/{customer_id}/consents",
                json={"purpose": "analytics.behaviour", "granted": True},
                headers={**auth, "Sec-GPC": "1"})
    assert check(client, auth, customer_id, "advertising.partners")["reason"] == "withdrawn"
    history = client.get(f"/api/v1/customers/{customer_id}/consents/history", headers=auth).json
    assert history["items"][-1]["collection_method"] == "gpc_signal"
    regranted = record(client, auth, customer_id, purpose="advertising.partners", granted=True)
    assert regranted.json["status"] == "granted"
    assert check(client, auth, customer_id, "advertising.partners")["allowed"] is True


def test_system_limited_to_purposes_gets_403_for_others(
        client: FlaskClient, catalogue: None, customer_id: str, hub: Hub) -> None:
    limited = {"Authorization": "Bearer " + new_key(
        hub, "newsletter", ["consents:read", "consents:write"], purposes=["marketing.email"])}
    assert record(client, limited, customer_id, purpose="marketing.sms",
                  granted=True).status_code == 403
    assert record(client, limited, customer_id, purpose="marketing.email",
                  granted=True).status_code == 201
    assert client.get(f"/api/v1/consent-check?customer_id={customer_id}&purpose=marketing.sms",
                      headers=limited).status_code == 403
    visible = states(client, limited, customer_id)
    assert list(visible) == ["marketing.email"]


def test_consent_for_unknown_or_erased_customer(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str) -> None:
    assert record(client, auth, "00000000-0000-4000-8000-000000000000",
                  purpose="marketing.sms", granted=True).status_code == 404
    client.delete(f"/api/v1/customers/{customer_id}", headers=auth)
    assert record(client, auth, customer_id, purpose="marketing.sms",
                  granted=True).status_code == 409


def test_confirmation_link_shows_a_button_and_the_post_confirms(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str,
        hub: Hub) -> None:
    """Opening the emailed link must not confirm by itself (link scanners prefetch)."""
    record(client, auth, customer_id, purpose="marketing.email", granted=True)
    token = _token_from_outbox(hub)
    page = client.get(f"/consent/confirm?token={token}")
    assert page.status_code == 200 and b"Yes, confirm" in page.data
    assert check(client, auth, customer_id, "marketing.email")["allowed"] is False
    done = client.post("/consent/confirm", data={"token": token})
    assert done.status_code == 200 and b"confirmed" in done.data
    assert check(client, auth, customer_id, "marketing.email")["allowed"] is True
    assert client.post("/consent/confirm", data={"token": token}).status_code == 410
    assert client.get(f"/consent/confirm?token={token}").status_code == 410


def test_the_pages_behind_mail_links_speak_the_readers_language(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str,
        hub: Hub) -> None:
    """A German mail's link opens a German page, with the purpose's German title."""
    from consent.catalogue import ECOMMERCE

    german = next(p for p in ECOMMERCE if p["key"] == "marketing.email")["translations"]["de"]
    record(client, auth, customer_id, purpose="marketing.email", granted=True)
    token = _token_from_outbox(hub)
    de = {"Accept-Language": "de-DE,de;q=0.9"}
    page = client.get(f"/consent/confirm?token={token}", headers=de).get_data(as_text=True)
    assert "Ja, bestätigen" in page and german["title"] in page and "Yes, confirm" not in page
    done = client.post("/consent/confirm", data={"token": token}, headers=de)
    assert "Danke: bestätigt" in done.get_data(as_text=True)
    gone = client.get(f"/consent/confirm?token={token}", headers=de)
    assert gone.status_code == 410 and "nicht mehr gültig" in gone.get_data(as_text=True)


def test_one_click_unsubscribe_withdraws_at_once_without_login(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str) -> None:
    """R-EPRIV-04: a free, one-step opt-out in every message updates the hub immediately."""
    record(client, auth, customer_id, purpose="marketing.sms", granted=True)
    link = client.post(f"/api/v1/customers/{customer_id}/unsubscribe-link",
                       json={"purpose": "marketing.sms"}, headers=auth).json
    assert link["list_unsubscribe_post"] == "List-Unsubscribe=One-Click"
    path = link["url"].removeprefix("http://127.0.0.1:8000")
    assert SEED_EMAIL not in path
    page = client.get(path)
    assert page.status_code == 200 and b"Unsubscribe" in page.data
    assert check(client, auth, customer_id, "marketing.sms")["allowed"] is True  # GET changes nothing
    done = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200
    assert check(client, auth, customer_id, "marketing.sms")["reason"] == "withdrawn"
    last = client.get(f"/api/v1/customers/{customer_id}/consents/history", headers=auth).json["items"][-1]
    assert last["collection_method"] == "email_unsubscribe" and last["status"] == "withdrawn"
    tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    assert client.post(tampered).status_code == 404
