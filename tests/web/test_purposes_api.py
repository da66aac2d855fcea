"""Purposes and notices (API.md "Purposes", "Notices"; R-PURP, R-CREC-02)."""

from __future__ import annotations

import hashlib

from flask.testing import FlaskClient

from privacy_hub.hub import Hub
from tests.web.conftest import new_key

NEW = {"key": "loyalty.points", "title": "Loyalty points", "legal_basis": "contract",
       "description": "Collect and redeem loyalty points on your orders.",
       "retention_days": 365, "fields": ["email", "first_name"],
       "data_categories": ["contact data"], "recipients": ["loyalty"], "dpv": "dpv:CustomerRelationshipManagement"}


def test_create_read_list_purpose(client: FlaskClient, auth: dict[str, str]) -> None:
    resp = client.post("/api/v1/purposes", json=NEW, headers=auth)
    assert resp.status_code == 201, resp.json
    assert resp.json["version"] == 1 and resp.json["legal_basis"] == "contract"
    assert client.get("/api/v1/purposes/loyalty.points", headers=auth).json["title"] == "Loyalty points"
    keys = [p["key"] for p in client.get("/api/v1/purposes", headers=auth).json["items"]]
    assert keys == ["loyalty.points"]
    assert client.post("/api/v1/purposes", json=NEW, headers=auth).status_code == 409


def test_legitimate_interests_needs_lia_ref(client: FlaskClient, auth: dict[str, str]) -> None:
    """R-PURP-03."""
    body = {**NEW, "key": "fraud", "legal_basis": "legitimate_interests"}
    resp = client.post("/api/v1/purposes", json=body, headers=auth)
    assert resp.status_code == 422 and "lia_ref" in resp.json["errors"]
    assert client.post("/api/v1/purposes", json={**body, "lia_ref": "LIA-7"},
                       headers=auth).status_code == 201


def test_cross_field_rules(client: FlaskClient, auth: dict[str, str]) -> None:
    """Special categories need consent; trackers need consent and live at most 13 months."""
    cases = [
        ({"special_category": True}, "special_category"),
        ({"cookie_category": "statistics"}, "cookie_category"),
        ({"double_opt_in": True}, "double_opt_in"),
        ({"legal_basis": "consent", "cookie_category": "marketing", "consent_lifetime_days": 400},
         "consent_lifetime_days"),
        ({"fields": ["email", "password"]}, "fields.1"),
        ({"key": "Bad Key"}, "key"),
        ({"legal_basis": "whatever"}, "legal_basis"),
    ]
    for change, field in cases:
        resp = client.post("/api/v1/purposes", json={**NEW, **change}, headers=auth)
        assert resp.status_code == 422, change
        assert field in resp.json["errors"], (change, resp.json)


def test_legal_basis_never_changes_and_material_change_raises_version(
        client: FlaskClient, auth: dict[str, str]) -> None:
    """R-PURP-02, R-CONSENT-09."""
    client.post("/api/v1/purposes", json=NEW, headers=auth)
    resp = client.patch("/api/v1/purposes/loyalty.points", json={"legal_basis": "consent"},
                        headers=auth)
    assert resp.status_code == 409
    minor = client.patch("/api/v1/purposes/loyalty.points", json={"title": "Loyalty club"},
                         headers=auth)
    assert minor.status_code == 200 and minor.json["version"] == 1
    major = client.patch("/api/v1/purposes/loyalty.points",
                         json={"description": "Now shared with partners", "material": True},
                         headers=auth)
    assert major.json["version"] == 2
    assert client.patch("/api/v1/purposes/nope", json={"title": "x"}, headers=auth).status_code == 404


def test_purpose_management_needs_the_scope(client: FlaskClient, hub: Hub) -> None:
    reader = {"Authorization": "Bearer " + new_key(hub, "reader", ["consents:read"])}
    assert client.post("/api/v1/purposes", json=NEW, headers=reader).status_code == 403
    assert client.get("/api/v1/purposes", headers=reader).status_code == 200


def test_notices_are_immutable_with_their_sha256(client: FlaskClient, auth: dict[str, str]) -> None:
    """R-CREC-02: the exact text is retrievable; other text for a version is 409."""
    text = "We use your data for the purposes listed below. Contact privacy@shop.example."
    resp = client.post("/api/v1/notices", json={"version": "2026-10", "language": "en", "text": text},
                       headers=auth)
    assert resp.status_code == 201
    assert resp.json["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    same = client.post("/api/v1/notices", json={"version": "2026-10", "text": text}, headers=auth)
    assert same.status_code == 200
    other = client.post("/api/v1/notices", json={"version": "2026-10", "text": text + "!"},
                        headers=auth)
    assert other.status_code == 409
    got = client.get("/api/v1/notices/2026-10?language=en", headers=auth).json
    assert got["text"] == text and got["sha256"] == resp.json["sha256"]
    assert client.get("/api/v1/notices/2026-10?language=de", headers=auth).status_code == 404


def test_records_of_processing_and_gpc_resource(client: FlaskClient, auth: dict[str, str],
                                                catalogue: None) -> None:
    """R-ROPA-01/02, R-SIG-02."""
    from consent.catalogue import ECOMMERCE

    ropa = client.get("/api/v1/ropa", headers=auth).json
    # one activity per purpose, and the suppression list (R-ERASE-05)
    assert sorted(a["purpose"] for a in ropa["activities"]) == sorted(
        [p["key"] for p in ECOMMERCE] + ["suppression_list"])
    fraud = next(a for a in ropa["activities"] if a["purpose"] == "fraud_prevention")
    for key in ("legal_basis", "categories_of_data_subjects", "categories_of_personal_data",
                "recipients", "third_country_transfers", "retention", "security_measures"):
        assert fraud[key], key
    csv_resp = client.get("/api/v1/ropa?format=csv", headers=auth)
    assert csv_resp.mimetype == "text/csv" and csv_resp.data.count(b"\n") == len(ropa["activities"]) + 1
    gpc = client.get("/.well-known/gpc.json")
    assert gpc.mimetype == "application/json" and gpc.json["gpc"] is True


def test_dpv_terms_come_from_the_vocabulary_with_the_legal_basis_as_a_gdpr_term(
        client: FlaskClient, auth: dict[str, str], catalogue: None) -> None:
    """R-PURP-06: a purpose's DPV term must be one of DPV's purposes; its basis maps to DPV."""
    bad = client.post("/api/v1/purposes", json={**NEW, "dpv": "dpv:MakeMoneySomehow"}, headers=auth)
    assert bad.status_code == 422 and list(bad.json["errors"]) == ["dpv"]
    for spelling in ("dpv:CustomerRelationshipManagement",
                     "https://w3id.org/dpv#CustomerRelationshipManagement"):
        resp = client.post("/api/v1/purposes", json={**NEW, "key": f"k{len(spelling)}",
                                                     "dpv": spelling}, headers=auth)
        assert resp.status_code == 201, resp.json
        assert resp.json["dpv"] == spelling
        assert resp.json["dpv_iri"] == "https://w3id.org/dpv#CustomerRelationshipManagement"
        assert resp.json["dpv_legal_basis"] == "https://w3id.org/dpv/legal/eu/gdpr#A6-1-b"
    patched = client.patch("/api/v1/purposes/invoicing", json={"dpv": "dpv:Nope"}, headers=auth)
    assert patched.status_code == 422 and "dpv" in patched.json["errors"]
    # Every purpose of the demo catalogue carries a valid term and its basis.
    items = client.get("/api/v1/purposes", headers=auth).json["items"]
    demo = [p for p in items if p["key"] in {"invoicing", "marketing.email", "fraud_prevention"}]
    assert {p["key"]: (p["dpv_iri"], p["dpv_legal_basis"].rsplit("#", 1)[1]) for p in demo} == {
        "invoicing": ("https://w3id.org/dpv#LegalCompliance", "A6-1-c"),
        "marketing.email": ("https://w3id.org/dpv#DirectMarketing", "A6-1-a"),
        "fraud_prevention": ("https://w3id.org/dpv#FraudPreventionAndDetection", "A6-1-f")}
    ropa = client.get("/api/v1/ropa", headers=auth).json["activities"]
    assert all(a["dpv_legal_basis"].startswith("https://w3id.org/dpv/legal/eu/gdpr#A6-1-")
               for a in ropa)


def test_further_processing_needs_a_registered_source_and_a_compatibility_assessment(
        client: FlaskClient, auth: dict[str, str], catalogue: None) -> None:
    """R-PURP-05: reusing data collected for purpose A on a basis other than consent needs
    the Art. 6(4) compatibility assessment; consent to the new purpose needs none."""
    further = {**NEW, "key": "analytics.orders", "legal_basis": "legitimate_interests",
               "lia_ref": "LIA-9", "source_purpose": "orders.fulfilment"}
    resp = client.post("/api/v1/purposes", json=further, headers=auth)
    assert resp.status_code == 422 and list(resp.json["errors"]) == ["compatibility_ref"]
    unknown = client.post("/api/v1/purposes", json={**further, "source_purpose": "no.such",
                                                    "compatibility_ref": "CA-1"}, headers=auth)
    assert unknown.status_code == 422 and "source_purpose" in unknown.json["errors"]
    lone_ref = {k: v for k, v in further.items() if k != "source_purpose"}
    orphan = client.post("/api/v1/purposes", json={**lone_ref, "compatibility_ref": "CA-1"},
                         headers=auth)
    assert orphan.status_code == 422 and "source_purpose" in orphan.json["errors"]
    ok = client.post("/api/v1/purposes", json={**further, "compatibility_ref": "CA-2026-04"},
                     headers=auth)
    assert ok.status_code == 201, ok.json
    assert (ok.json["source_purpose"], ok.json["compatibility_ref"]) == ("orders.fulfilment",
                                                                         "CA-2026-04")
    consented = client.post("/api/v1/purposes", json={
        **NEW, "key": "marketing.post", "legal_basis": "consent",
        "source_purpose": "orders.fulfilment"}, headers=auth)
    assert consented.status_code == 201, consented.json
    # A source chain never leads back to the purpose itself.
    loop = client.patch("/api/v1/purposes/orders.fulfilment", json={
        "source_purpose": "analytics.orders", "compatibility_ref": "CA-3"}, headers=auth)
    assert loop.status_code == 422 and "source_purpose" in loop.json["errors"]
    assert client.get("/api/v1/purposes/orders.fulfilment",
                      headers=auth).json["source_purpose"] is None
    ropa = {a["purpose"]: a for a in client.get("/api/v1/ropa", headers=auth).json["activities"]}
    assert ropa["analytics.orders"]["further_processing_of"] == "orders.fulfilment"
    assert ropa["analytics.orders"]["compatibility_ref"] == "CA-2026-04"


def test_a_consent_purpose_says_what_it_is_for_and_which_data(
        client: FlaskClient, auth: dict[str, str]) -> None:
    """R-CONSENT-04: consent can only be asked for with the purpose's description and data
    categories; other bases do not ask, so they may leave them out."""
    consent = {**NEW, "key": "marketing.catalogue", "legal_basis": "consent"}
    for missing, field in (({"description": "  "}, "description"),
                           ({"data_categories": []}, "data_categories")):
        resp = client.post("/api/v1/purposes", json={**consent, **missing}, headers=auth)
        assert resp.status_code == 422 and list(resp.json["errors"]) == [field], resp.json
    assert client.post("/api/v1/purposes", json=consent, headers=auth).status_code == 201
    blanked = client.patch("/api/v1/purposes/marketing.catalogue", json={"description": ""},
                           headers=auth)
    assert blanked.status_code == 422 and "description" in blanked.json["errors"]
    contract = {k: v for k, v in NEW.items() if k not in ("description", "data_categories")}
    assert client.post("/api/v1/purposes", json=contract, headers=auth).status_code == 201


def test_a_material_change_answers_how_many_customers_were_mailed(
        client: FlaskClient, auth: dict[str, str], customer_id: str) -> None:
    """R-CONSENT-09: the PATCH answer counts the customers whose consent the change
    invalidates (each mailed in the same transaction); the OpenAPI document says so."""
    body = {**NEW, "key": "newsletter", "legal_basis": "consent"}
    assert client.post("/api/v1/purposes", json=body, headers=auth).status_code == 201
    granted = client.post(f"/api/v1/customers/{customer_id}/consents",
                          json={"purpose": "newsletter", "granted": True,
                                "collection_method": "web_form"}, headers=auth)
    assert granted.status_code == 201, granted.json
    minor = client.patch("/api/v1/purposes/newsletter", json={"title": "Our newsletter"},
                         headers=auth)
    assert minor.json["notified"] == 0
    major = client.patch("/api/v1/purposes/newsletter",
                         json={"description": "Now by text message too", "material": True},
                         headers=auth)
    assert major.status_code == 200 and major.json["version"] == 2
    assert major.json["notified"] == 1
    again = client.patch("/api/v1/purposes/newsletter",
                         json={"description": "And by post", "material": True}, headers=auth)
    assert again.json["notified"] == 0  # the consent to version 1 was told once already
    spec = client.get("/api/openapi.json").json
    patch = spec["paths"]["/api/v1/purposes/{key}"]["patch"]
    ref = patch["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert "R-CONSENT-09" in schema["properties"]["notified"]["description"]
