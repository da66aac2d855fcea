"""Purpose texts in the customer's language (Art. 12(1) GDPR, R-INFO-01): per-language
titles and descriptions on purposes, validated, versioned, and shown by the portal and
the cookie banner in the page's language, with the default text as fallback."""

from __future__ import annotations

import json
import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from consent.models import PurposeVersion
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from tests.conftest import SEED_EMAIL

GERMAN = {"title": "Treuepunkte", "description": "Treuepunkte zu Ihren Bestellungen sammeln "
                                                 "und einlösen."}
NEW = {"key": "loyalty.points", "title": "Loyalty points", "legal_basis": "consent",
       "description": "Collect and redeem loyalty points on your orders.",
       "retention_days": 365, "fields": ["email", "first_name"],
       "data_categories": ["contact data"], "recipients": ["loyalty"],
       "translations": {"de": GERMAN}}
TOKEN = "t0ken-for-translation-tests-aaaaaaaaaaaaaaaaaaaaa"


# -- the registry and its API ------------------------------------------------------------


def test_a_purpose_keeps_its_translations_in_every_representation(
        client: FlaskClient, auth: dict[str, str]) -> None:
    """POST, GET and the list return the translations beside the default text."""
    created = client.post("/api/v1/purposes", json=NEW, headers=auth)
    assert created.status_code == 201, created.json
    assert created.json["title"] == "Loyalty points"
    assert created.json["translations"] == {"de": GERMAN}
    assert client.get("/api/v1/purposes/loyalty.points",
                      headers=auth).json["translations"] == {"de": GERMAN}
    listed = client.get("/api/v1/purposes", headers=auth).json["items"]
    assert [p["translations"] for p in listed] == [{"de": GERMAN}]
    plain = {k: v for k, v in NEW.items() if k != "translations"}
    other = client.post("/api/v1/purposes", json={**plain, "key": "loyalty.club"}, headers=auth)
    assert other.status_code == 201 and other.json["translations"] == {}


def test_patching_translations_replaces_them_in_a_new_revision_and_material_raises_the_version(
        client: FlaskClient, auth: dict[str, str], hub: Hub) -> None:
    """R-CONSENT-09: a changed translation is a new revision of the purpose's snapshot; one
    that changes what customers agree to is flagged material and needs re-consent."""
    client.post("/api/v1/purposes", json=NEW, headers=auth)
    french = {"title": "Points de fidélité", "description": "Cumuler des points de fidélité."}
    patched = client.patch("/api/v1/purposes/loyalty.points",
                           json={"translations": {"de": GERMAN, "fr": french}}, headers=auth)
    assert patched.status_code == 200, patched.json
    assert patched.json["translations"] == {"de": GERMAN, "fr": french}
    assert patched.json["version"] == 1
    shared = {"title": "Treuepunkte", "description": "Auch an Partner weitergegeben."}
    material = client.patch("/api/v1/purposes/loyalty.points",
                            json={"translations": {"de": shared}, "material": True}, headers=auth)
    assert material.json["version"] == 2 and material.json["translations"] == {"de": shared}
    removed = client.patch("/api/v1/purposes/loyalty.points", json={"translations": None},
                           headers=auth)
    assert removed.status_code == 200 and removed.json["translations"] == {}
    with transaction(hub.sessions) as session:
        versions = session.scalars(select(PurposeVersion).where(PurposeVersion.key == "loyalty.points")
                                   .order_by(PurposeVersion.version, PurposeVersion.revision)).all()
        snapshots = [(v.version, v.revision, v.material, json.loads(v.snapshot)["translations"])
                     for v in versions]
    assert snapshots == [(1, 1, True, {"de": GERMAN}),
                         (1, 2, False, {"de": GERMAN, "fr": french}),
                         (2, 1, True, {"de": shared}),
                         (2, 2, False, {})]


@pytest.mark.parametrize(("translations", "field"), [
    ({"de-AT": GERMAN}, "translations.de-AT"),
    ({"DE": GERMAN}, "translations.DE"),
    ({"deutsch": GERMAN}, "translations.deutsch"),
    ({"de": {"description": "Nur eine Beschreibung."}}, "translations.de.title"),
    ({"de": {"title": "", "description": "Leer."}}, "translations.de.title"),
    ({"de": {"title": "T" * 201, "description": "Zu lang."}}, "translations.de.title"),
    ({"de": {"title": "Treuepunkte", "description": "x" * 5001}}, "translations.de.description"),
    ({"de": {"title": "Treuepunkte"}}, "translations.de.description"),
    ({"de": {**GERMAN, "body": "?"}}, "translations.de.body"),
    ({"de": "Treuepunkte"}, "translations.de"),
    (["de"], "translations"),
])
def test_an_invalid_translation_is_a_422_naming_its_field(
        client: FlaskClient, auth: dict[str, str], translations: object, field: str) -> None:
    """Keys are lower-case ISO 639 codes (a region like de-AT is refused, not shortened);
    texts keep the default text's limits, and a purpose with a description needs it in
    every language too (R-CONSENT-04)."""
    created = client.post("/api/v1/purposes", json={**NEW, "translations": translations},
                          headers=auth)
    assert created.status_code == 422, created.json
    assert field in created.json["errors"], created.json
    assert field in created.json["detail"]
    if field == "translations.de-AT":
        assert "regions such as de-AT are refused" in created.json["errors"][field][0]
    client.post("/api/v1/purposes", json={k: v for k, v in NEW.items() if k != "translations"},
                headers=auth)
    patched = client.patch("/api/v1/purposes/loyalty.points",
                           json={"translations": translations}, headers=auth)
    assert patched.status_code == 422 and field in patched.json["errors"], patched.json
    assert client.get("/api/v1/purposes/loyalty.points", headers=auth).json["translations"] == {}


def test_the_openapi_document_describes_translations(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").json
    schemas = spec["components"]["schemas"]
    shown = schemas["Purpose"]["properties"]["translations"]
    assert shown["type"] == "object" and "additionalProperties" in shown
    created = schemas["PurposeCreate"]["properties"]["translations"]
    assert "de-AT" in created["description"]


# -- the pages, in the page's language -----------------------------------------------------


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', page)
    assert match, page[:500]
    return match.group(1)


@pytest.fixture
def signed_in(client: FlaskClient, auth: dict[str, str], customer_id: str,
              monkeypatch: pytest.MonkeyPatch) -> str:
    """The seeded customer signed in to the portal with a mailed link, as in real life."""
    monkeypatch.setattr("privacy_hub.usecases.sign_in.secrets.token_urlsafe", lambda _n: TOKEN)
    start = client.get("/portal/").get_data(as_text=True)
    assert client.post("/portal/", data={"email": SEED_EMAIL,
                                         "csrf_token": _csrf(start)}).status_code == 200
    confirm = client.get(f"/portal/sign-in/confirm?token={TOKEN}").get_data(as_text=True)
    used = client.post("/portal/sign-in/confirm", data={"token": TOKEN,
                                                        "csrf_token": _csrf(confirm)})
    assert used.status_code == 303
    return customer_id


@pytest.fixture
def translated(client: FlaskClient, auth: dict[str, str]) -> None:
    """A consent purpose with German texts, a direct-marketing one without any, and a
    legal-obligation one with German texts (kept on erasure)."""
    assert client.post("/api/v1/purposes", json=NEW, headers=auth).status_code == 201
    untranslated = {**{k: v for k, v in NEW.items() if k != "translations"},
                    "key": "marketing.post", "title": "Offers by post",
                    "description": "Send you our catalogue by post.", "direct_marketing": True}
    assert client.post("/api/v1/purposes", json=untranslated, headers=auth).status_code == 201
    invoices = {"key": "invoicing", "title": "Invoicing", "legal_basis": "legal_obligation",
                "description": "Keep invoices as tax law requires.", "retention_days": 3650,
                "fields": ["first_name", "last_name"], "data_categories": ["invoices"],
                "translations": {"de": {"title": "Rechnungen",
                                        "description": "Rechnungen aufbewahren, wie es das "
                                                       "Steuerrecht verlangt."}}}
    assert client.post("/api/v1/purposes", json=invoices, headers=auth).status_code == 201


def _page(client: FlaskClient, path: str, language: str) -> str:
    client.set_cookie("hub_lang", language)
    resp = client.get(path)
    assert resp.status_code == 200, path
    return resp.get_data(as_text=True)


@pytest.mark.usefixtures("translated")
def test_my_choices_shows_the_german_title_on_the_german_page_and_the_english_on_the_english(
        client: FlaskClient, signed_in: str) -> None:
    """Art. 12(1): the purpose reads in the language of the page around it."""
    german = _page(client, "/portal/choices", "de")
    assert 'lang="de"' in german
    assert ">Treuepunkte</h2>" in german and GERMAN["description"] in german
    assert "Loyalty points" not in german and NEW["description"] not in german
    english = _page(client, "/portal/choices", "en")
    assert ">Loyalty points</h2>" in english and NEW["description"] in english
    assert "Treuepunkte" not in english


@pytest.mark.usefixtures("translated")
def test_a_purpose_without_a_translation_shows_its_default_text_on_a_german_page(
        client: FlaskClient, signed_in: str) -> None:
    german = _page(client, "/portal/choices", "de")
    assert ">Offers by post</h2>" in german and "Send you our catalogue by post." in german


@pytest.mark.usefixtures("translated")
def test_why_objection_erasure_and_history_pages_name_purposes_in_german(
        client: FlaskClient, signed_in: str) -> None:
    why = _page(client, "/portal/why", "de")
    assert "Rechnungen</h2>" in why and "Steuerrecht" in why and "Invoicing" not in why
    assert "Offers by post" in why  # objectable, untranslated: the default text
    objection = _page(client, "/portal/object", "de")
    assert "Offers by post" in objection and "Loyalty points" not in objection
    erase = _page(client, "/portal/erase", "de")
    assert "<strong>Rechnungen</strong>" in erase and "Invoicing" not in erase
    form = _page(client, "/portal/choices", "de")
    granted = client.post("/portal/choices/loyalty.points",
                          data={"granted": "1", "csrf_token": _csrf(form)})
    assert granted.status_code == 303
    history = _page(client, "/portal/history", "de")
    assert "<td>Treuepunkte</td>" in history
    assert "<td>Loyalty points</td>" in _page(client, "/portal/history", "en")


@pytest.mark.usefixtures("catalogue")
def test_the_cookie_banner_asks_in_german_for_a_german_browser_and_falls_back_to_english(
        client: FlaskClient) -> None:
    """The banner's purposes in the visitor's language; French has no translation."""
    def analytics(language: str) -> dict[str, str]:
        config = client.get(f"/consent/banner/config?lang={language}").json
        statistics = next(c for c in config["categories"] if c["key"] == "statistics")
        return dict(statistics["purposes"][0])

    assert analytics("de")["title"] == "Nutzungsanalyse"
    assert "Warenkörbe" in analytics("de")["description"]
    assert analytics("en")["title"] == "Behavioural analytics"
    german_browser = client.get("/consent/banner/config",
                                headers={"Accept-Language": "de-DE,de;q=0.9"}).json
    titles = [p["title"] for c in german_browser["categories"] for p in c["purposes"]]
    assert "Werbung mit Partnern" in titles
    assert analytics("fr")["title"] == "Behavioural analytics"
