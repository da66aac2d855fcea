"""The purpose and system registries in the console (R-ROPA: the registries behind the
records of processing; R-SEC: keys shown once, least privilege; R-AUD: every change
audited with the staff member's id). Through the pages, as a DPO would, on SQLite and
PostgreSQL, with a real webhook receiver on loopback and the real worker."""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from audit.models import AuditEntry
from privacy_hub.hub import Hub
from privacy_hub.jobs import webhooks
from privacy_hub.jobs.worker import Worker
from tests.console import Staff, csrf, make_staff, signed_in_client
from tests.e2e.webhook_sink import WebhookSink
from tests.hubs import make_hub


@pytest.fixture
def hub(tmp_path: Path, db_url: str) -> Iterator[Hub]:
    # One attempt per delivery: a failure is at once a dead delivery to send again.
    h = make_hub(tmp_path, db_url, webhook_max_attempts=1)
    yield h
    h.close()


@pytest.fixture
def app(hub: Hub) -> Flask:
    from privacy_hub.app import create_app

    app = create_app(hub=hub)
    app.config["WTF_CSRF_ENABLED"] = True
    return app


@pytest.fixture
def dpo(hub: Hub) -> Staff:
    return make_staff(hub, "dpo")


@pytest.fixture
def console(client: FlaskClient, dpo: Staff) -> FlaskClient:
    return signed_in_client(client, dpo)


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    with WebhookSink() as s:
        yield s


def _text(resp: object) -> str:
    return html.unescape(resp.get_data(as_text=True))  # type: ignore[attr-defined]


def _register(console: FlaskClient, name: str, *, scopes: list[str],
              webhook_url: str = "") -> tuple[str, str]:
    """Register a system through the page; its API key and webhook secret from the answer."""
    resp = console.post("/console/systems/-/new", data={
        "name": name, "scopes": scopes, "purposes": "", "webhook_url": webhook_url,
        "csrf_token": csrf(console, "/console/systems/-/new")})
    assert resp.status_code == 200, _text(resp)[:2000]
    assert resp.headers["Cache-Control"] == "no-store"
    page = _text(resp)
    key = re.search(r'id="api-key">(phk_[^<]+)<', page)
    secret = re.search(r'id="webhook-secret">(whsec_[^<]+)<', page)
    assert key and secret
    return key.group(1), secret.group(1)


def _actions(hub: Hub, action: str) -> list[AuditEntry]:
    with hub.sessions() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def _post(console: FlaskClient, path: str, page: str, **data: object) -> object:
    return console.post(path, data={**data, "csrf_token": csrf(console, page)})


# -- systems ------------------------------------------------------------------------------

def test_a_registered_systems_key_is_shown_once_and_works_against_the_api(
        console: FlaskClient, client: FlaskClient, hub: Hub, dpo: Staff) -> None:
    key, _secret = _register(console, "shop-crm", scopes=["purposes:manage", "consents:read"])
    api = hub_client(hub)
    assert api.get("/api/v1/purposes", headers={"Authorization": f"Bearer {key}"}).status_code == 200

    listing = _text(console.get("/console/systems/"))
    detail = _text(console.get("/console/systems/shop-crm"))
    secret_part = key.split("_", 2)[2]  # phk_<id>_<secret>; the secret may hold "_" too
    assert "shop-crm" in listing and "consents:read" in detail
    assert secret_part not in listing and secret_part not in detail  # shown once, never again
    (entry,) = _actions(hub, "system.created")
    assert (entry.actor_type, entry.actor_id) == ("staff", dpo.id)  # R-AUD
    assert secret_part not in entry.details


def hub_client(hub: Hub) -> FlaskClient:
    from privacy_hub.app import create_app

    return create_app(hub=hub).test_client()


def test_a_bad_system_name_and_url_are_named_beside_their_fields(console: FlaskClient) -> None:
    for data, field in (({"name": "Shop CRM"}, "name"),
                        ({"name": "shop", "webhook_url": "http://example.com/h"}, "webhook_url"),
                        ({"name": "shop", "scopes": ["everything"]}, "scopes")):
        resp = console.post("/console/systems/-/new", data={
            "scopes": ["customers:read"], **data,
            "csrf_token": csrf(console, "/console/systems/-/new")})
        assert resp.status_code == 422, field
        page = _text(resp)
        assert f'id="{field}-error"' in page and "phk_" not in page


def test_rotating_a_key_shows_the_new_one_once_and_refuses_the_old(
        console: FlaskClient, hub: Hub, dpo: Staff) -> None:
    old, _ = _register(console, "mailer", scopes=["purposes:manage"])
    resp = _post(console, "/console/systems/mailer/rotate-key", "/console/systems/mailer")
    assert resp.status_code == 200  # type: ignore[attr-defined]
    new = re.search(r'id="api-key">(phk_[^<]+)<', _text(resp)).group(1)  # type: ignore[union-attr]
    assert new != old
    api = hub_client(hub)
    assert api.get("/api/v1/purposes", headers={"Authorization": f"Bearer {old}"}).status_code == 401
    assert api.get("/api/v1/purposes", headers={"Authorization": f"Bearer {new}"}).status_code == 200
    (entry,) = _actions(hub, "system.key_rotated")
    assert entry.actor_id == dpo.id


def test_a_disabled_system_is_refused_and_shown_disabled(
        console: FlaskClient, hub: Hub, dpo: Staff) -> None:
    key, _ = _register(console, "old-shop", scopes=["purposes:manage"])
    resp = _post(console, "/console/systems/old-shop/disable", "/console/systems/old-shop")
    assert resp.status_code == 303  # type: ignore[attr-defined]
    api = hub_client(hub)
    assert api.get("/api/v1/purposes", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    assert "disabled" in _text(console.get("/console/systems/"))
    (entry,) = _actions(hub, "system.disabled")
    assert entry.actor_id == dpo.id


def test_a_test_webhook_is_queued_signed_delivered_and_listed(
        console: FlaskClient, hub: Hub, sink: WebhookSink, dpo: Staff) -> None:
    _key, secret = _register(console, "crm", scopes=["consents:read"], webhook_url=sink.url)
    resp = _post(console, "/console/systems/crm/test-webhook", "/console/systems/crm")
    assert resp.status_code == 303  # type: ignore[attr-defined]
    assert "hub.test" in _text(console.get("/console/systems/crm"))
    assert Worker(hub).run_once() == 1

    (received,) = sink.received
    assert received.json["type"] == "hub.test" and received.json["data"] == {"system": "crm"}
    assert webhooks.verify(secret, received.body, received.headers[webhooks.SIGNATURE_HEADER.lower()])
    page = _text(console.get("/console/systems/crm"))
    assert "delivered" in page and received.event_id in page
    (entry,) = _actions(hub, "webhook.test_queued")
    assert entry.actor_id == dpo.id


def test_a_test_webhook_needs_a_webhook_url(console: FlaskClient) -> None:
    _register(console, "no-hooks", scopes=["consents:read"])
    resp = _post(console, "/console/systems/no-hooks/test-webhook", "/console/systems/no-hooks")
    assert resp.status_code == 409  # type: ignore[attr-defined]
    assert "no webhook URL" in _text(resp)


def test_a_failed_delivery_is_listed_first_and_sent_again(
        console: FlaskClient, hub: Hub, sink: WebhookSink, dpo: Staff) -> None:
    _register(console, "crm", scopes=["consents:read"], webhook_url=sink.url)
    sink.respond(500)
    _post(console, "/console/systems/crm/test-webhook", "/console/systems/crm")
    worker = Worker(hub)
    assert worker.run_once() == 1  # HTTP 500, and one attempt only: dead
    _post(console, "/console/systems/crm/test-webhook", "/console/systems/crm")
    assert worker.run_once() == 1  # the second one is delivered

    page = _text(console.get("/console/systems/crm"))
    rows = re.findall(r"<tr>.*?</tr>", page, re.S)[1:]
    assert "failed" in rows[0] and "HTTP 500" in rows[0]  # failures first, newest below
    assert "delivered" in rows[1]
    retry = re.search(r'action="(/console/systems/crm/deliveries/[0-9a-f-]+/retry)"', page)
    assert retry and len(re.findall(r"/retry\"", page)) == 1

    resp = _post(console, retry.group(1), "/console/systems/crm")
    assert resp.status_code == 303  # type: ignore[attr-defined]
    assert worker.run_once() == 1
    assert len(sink.received) == 3
    page = _text(console.get("/console/systems/crm"))
    assert "HTTP 500" not in page and "/retry" not in page
    (entry,) = _actions(hub, "webhook.retried")
    assert entry.actor_id == dpo.id
    again = _post(console, retry.group(1), "/console/systems/crm")
    assert again.status_code == 409  # type: ignore[attr-defined]  # delivered: nothing to retry


def test_a_delivery_of_another_system_is_not_found_under_this_one(
        console: FlaskClient, hub: Hub, sink: WebhookSink) -> None:
    _register(console, "crm", scopes=["consents:read"], webhook_url=sink.url)
    _register(console, "other", scopes=["consents:read"])
    sink.respond(500)
    _post(console, "/console/systems/crm/test-webhook", "/console/systems/crm")
    Worker(hub).run_once()
    path = re.search(r'action="/console/systems/crm(/deliveries/[0-9a-f-]+/retry)"',
                     _text(console.get("/console/systems/crm"))).group(1)  # type: ignore[union-attr]
    assert _post(console, "/console/systems/other" + path,
                 "/console/systems/other").status_code == 404  # type: ignore[attr-defined]


# -- purposes -----------------------------------------------------------------------------

NEWSLETTER = {
    "key": "marketing.newsletter", "legal_basis": "consent", "title": "Newsletter",
    "description": "", "fields": ["email", "first_name"], "data_categories": "",
    "recipients": "mailer", "retention_days": "730", "cookie_category": "",
    "consent_lifetime_days": "", "lia_ref": "", "dpv": "", "source_purpose": "",
    "compatibility_ref": "", "title_de": "", "description_de": "",
}


def test_a_purpose_is_created_with_errors_beside_its_fields_then_versioned_materially(
        console: FlaskClient, hub: Hub, dpo: Staff) -> None:
    page = "/console/purposes/-/new"
    refused = _post(console, page, page, **{**NEWSLETTER, "retention_days": "many"})
    assert refused.status_code == 422  # type: ignore[attr-defined]
    text = _text(refused)
    assert 'id="retention_days-error"' in text  # the API schema's rule, beside its field

    refused = _post(console, page, page, **NEWSLETTER)
    assert refused.status_code == 422  # type: ignore[attr-defined]
    text = _text(refused)
    # R-CONSENT-04 (the domain's rule): a consent purpose says what for and which data
    assert 'id="description-error"' in text and 'id="data_categories-error"' in text
    assert 'value="marketing.newsletter"' in text  # what was typed is kept

    created = _post(console, page, page, **{
        **NEWSLETTER, "description": "News about our products, monthly.",
        "data_categories": "contact data\nname"})
    assert created.status_code == 303  # type: ignore[attr-defined]
    detail = _text(console.get("/console/purposes/marketing.newsletter"))
    assert "Newsletter" in detail and "contact data" in detail

    edit = "/console/purposes/marketing.newsletter/new-version"
    form = _text(console.get(edit))
    assert "News about our products, monthly." in form  # prefilled with the current version
    changed = _post(console, edit, edit, **{
        **NEWSLETTER, "description": "News and offers from partner shops, weekly.",
        "data_categories": "contact data\nname", "material": "y"})
    assert changed.status_code == 303  # type: ignore[attr-defined]
    # R-CONSENT-09: the page says how many customers were mailed (nobody had consented)
    assert "notified=0" in changed.headers["Location"]  # type: ignore[attr-defined]
    told = _text(console.get(changed.headers["Location"]))  # type: ignore[attr-defined]
    assert "Customers sent a mail because this change invalidates their consent: 0." in told
    detail = _text(console.get("/console/purposes/marketing.newsletter"))
    assert "partner shops" in detail and "material: asked again" in detail
    api = hub_client(hub)
    key = _api_key(hub)
    body = api.get("/api/v1/purposes/marketing.newsletter",
                   headers={"Authorization": f"Bearer {key}"}).json
    assert body["version"] == 2
    updated = _actions(hub, "purpose.updated")
    assert [(e.actor_type, e.actor_id) for e in _actions(hub, "purpose.created")] == [
        ("staff", dpo.id)]
    assert len(updated) == 1 and updated[0].actor_id == dpo.id
    assert '"material": true' in updated[0].details or '"material":true' in updated[0].details


def _api_key(hub: Hub) -> str:
    from tests.web.conftest import new_key

    return new_key(hub, "reader", ["purposes:manage"])


def test_a_new_version_refuses_a_rule_it_breaks_beside_the_field(console: FlaskClient) -> None:
    page = "/console/purposes/-/new"
    _post(console, page, page, **{**NEWSLETTER, "description": "Monthly news.",
                                  "data_categories": "contact data"})
    edit = "/console/purposes/marketing.newsletter/new-version"
    resp = _post(console, edit, edit, **{**NEWSLETTER, "description": "Monthly news.",
                                         "data_categories": "contact data",
                                         "consent_lifetime_days": "x"})
    assert resp.status_code == 422  # type: ignore[attr-defined]
    assert 'id="consent_lifetime_days-error"' in _text(resp)
    unchanged = _post(console, edit, edit, **{**NEWSLETTER, "description": "Monthly news.",
                                              "data_categories": "contact data"})
    assert unchanged.status_code == 422  # type: ignore[attr-defined]
    assert "Nothing was changed" in _text(unchanged)


def test_a_published_notice_shows_the_sha256_of_its_text(
        console: FlaskClient, hub: Hub, dpo: Staff) -> None:
    text = "We process your data to run the shop.\nÄnderungen: siehe Version 2026-10."
    resp = _post(console, "/console/notices/publish", "/console/notices/",
                 version="2026-10", language="de", text=text)
    assert resp.status_code == 200  # type: ignore[attr-defined]
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert f'id="sha256">{digest}<' in _text(resp)
    listing = _text(console.get("/console/notices/"))
    assert digest in listing and "2026-10" in listing
    conflict = _post(console, "/console/notices/publish", "/console/notices/",
                     version="2026-10", language="de", text="Other text")
    assert conflict.status_code == 409  # type: ignore[attr-defined]  # notices never change
    bad = _post(console, "/console/notices/publish", "/console/notices/",
                version="2026-11", language="German", text="x")
    assert bad.status_code == 422 and 'id="language-error"' in _text(bad)  # type: ignore[attr-defined]
    (entry,) = _actions(hub, "notice.published")
    assert entry.actor_id == dpo.id and digest in entry.details


def test_an_auditor_reads_the_registries_and_gets_403_on_every_write(
        app: Flask, hub: Hub, client: FlaskClient, sink: WebhookSink) -> None:
    dpo = make_staff(hub, "dpo")
    dpo_client = signed_in_client(app.test_client(), dpo)
    _register(dpo_client, "crm", scopes=["consents:read"], webhook_url=sink.url)
    page = "/console/purposes/-/new"
    _post(dpo_client, page, page, **{**NEWSLETTER, "description": "Monthly news.",
                                     "data_categories": "contact data"})

    auditor = signed_in_client(client, make_staff(hub, "auditor"))
    for path in ("/console/systems/", "/console/systems/crm", "/console/purposes/",
                 "/console/purposes/marketing.newsletter", "/console/notices/"):
        resp = auditor.get(path)
        assert resp.status_code == 200, path
        assert "<form" not in _text(resp).split("<main", 1)[1].replace(
            'action="/console/sign-out"', ""), path  # no write buttons offered
    token = csrf(auditor, "/console/")
    for path in ("/console/systems/-/new", "/console/systems/crm/rotate-key",
                 "/console/systems/crm/disable", "/console/systems/crm/test-webhook",
                 "/console/purposes/-/new", "/console/purposes/marketing.newsletter/new-version",
                 "/console/notices/publish"):
        assert auditor.post(path, data={"csrf_token": token}).status_code == 403, path
    assert auditor.get("/console/systems/-/new").status_code == 403
    assert auditor.get("/console/purposes/marketing.newsletter/new-version").status_code == 403


def test_a_purpose_gets_its_german_text_through_the_pages(console: FlaskClient, hub: Hub) -> None:
    page = "/console/purposes/-/new"
    base = {**NEWSLETTER, "description": "Monthly news.", "data_categories": "contact data"}
    refused = _post(console, page, page, **{**base, "title_de": "Newsletter"})
    assert refused.status_code == 422  # type: ignore[attr-defined]
    # the registry's rule: a German text says all the default says, description included
    assert 'id="description_de-error"' in _text(refused)
    created = _post(console, page, page, **{**base, "title_de": "Newsletter",
                                            "description_de": "Monatliche Neuigkeiten."})
    assert created.status_code == 303  # type: ignore[attr-defined]
    assert "Monatliche Neuigkeiten." in _text(console.get("/console/purposes/marketing.newsletter"))

    edit = "/console/purposes/marketing.newsletter/new-version"
    assert "Monatliche Neuigkeiten." in _text(console.get(edit))  # prefilled
    changed = _post(console, edit, edit, **{**base, "title_de": "Rundbrief",
                                            "description_de": "Monatliche Neuigkeiten."})
    assert changed.status_code == 303  # type: ignore[attr-defined]
    body = hub_client(hub).get("/api/v1/purposes/marketing.newsletter", headers={
        "Authorization": f"Bearer {_api_key(hub)}"}).json
    assert body["translations"] == {"de": {"title": "Rundbrief",
                                           "description": "Monatliche Neuigkeiten."}}
    assert body["version"] == 1  # not ticked material: the same version


def test_a_purposes_transfers_automated_decision_and_risk_are_set_through_the_form(
        console: FlaskClient, hub: Hub) -> None:
    """R-ROPA-01 and R-DPBD-03 in the console: a high-risk purpose needs its DPIA (409
    beside the field); transfers, automated decision and subject categories round-trip."""
    page = "/console/purposes/-/new"
    given = {**NEWSLETTER, "description": "Monthly news.", "data_categories": "contact data",
             "data_subject_categories": "customers\nnewsletter subscribers",
             "transfers": "Mailer Inc.; us; standard contractual clauses (2021/914), module 2",
             "adm_logic": "Send times from past opens.", "adm_significance": "",
             "adm_consequences": "", "risk": "high", "dpia_ref": ""}
    incomplete = _post(console, page, page, **given)
    assert incomplete.status_code == 422  # type: ignore[attr-defined]
    assert 'id="adm_significance-error"' in _text(incomplete)
    given |= {"adm_significance": "Only when a mail arrives.", "adm_consequences": "None."}
    refused = _post(console, page, page, **given)
    assert refused.status_code == 409  # type: ignore[attr-defined]
    assert 'id="dpia_ref-error"' in _text(refused)
    created = _post(console, page, page, **{**given, "dpia_ref": "DPIA-2026-11"})
    assert created.status_code == 303  # type: ignore[attr-defined]
    reader = {"Authorization": f"Bearer {_api_key(hub)}"}
    body = hub_client(hub).get("/api/v1/purposes/marketing.newsletter", headers=reader).json
    assert body["transfers"] == [{"recipient": "Mailer Inc.", "country": "US", "safeguard":
                                  "standard contractual clauses (2021/914), module 2"}]
    assert body["automated_decisions"] == {"logic": "Send times from past opens.",
                                           "significance": "Only when a mail arrives.",
                                           "consequences": "None."}
    assert body["data_subject_categories"] == ["customers", "newsletter subscribers"]
    assert (body["risk"], body["dpia_ref"]) == ("high", "DPIA-2026-11")
    detail = _text(console.get("/console/purposes/marketing.newsletter"))
    assert "Mailer Inc. (US)" in detail and "DPIA-2026-11" in detail
    edit = "/console/purposes/marketing.newsletter/new-version"
    form = _text(console.get(edit))
    assert "Mailer Inc.; US; standard contractual clauses (2021/914), module 2" in form
    dropped = _post(console, edit, edit, **{**given, "dpia_ref": "DPIA-2026-11",
                                            "transfers": "", "data_subject_categories": ""})
    assert dropped.status_code == 303  # type: ignore[attr-defined]
    body = hub_client(hub).get("/api/v1/purposes/marketing.newsletter", headers=reader).json
    assert (body["transfers"], body["data_subject_categories"]) == ([], ["customers"])
