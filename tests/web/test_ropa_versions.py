"""The records of processing generated from the registries and the configuration, and
versioned with their change history (R-ROPA-01, Art. 30(1), 5(2)), on SQLite and
PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from privacy_hub.app import create_app
from privacy_hub.hub import Hub
from tests.hubs import make_hub
from tests.web.conftest import new_key
from tests.web.test_purpose_record_fields import DECISION, TRANSFER
from tests.web.test_purposes_api import NEW

#: the seven elements of Art. 30(1)(a)-(g), as each activity of GET /ropa names them
ART_30_ELEMENTS = ("purpose", "legal_basis", "categories_of_data_subjects",
                   "categories_of_personal_data", "recipients", "transfers",
                   "third_country_transfers", "retention", "security_measures")


def _versions(client: FlaskClient, auth: dict[str, str]) -> list[dict[str, Any]]:
    resp = client.get("/api/v1/ropa/versions?limit=1000", headers=auth)
    assert resp.status_code == 200, resp.json
    return list(resp.json["items"])


def _latest(client: FlaskClient, auth: dict[str, str]) -> dict[str, Any]:
    return _versions(client, auth)[0]


def test_creating_a_purpose_adds_a_version_whose_changes_name_it(
        client: FlaskClient, auth: dict[str, str]) -> None:
    """R-ROPA-01: "Creating a purpose adds a new ROPA version; diff between versions
    retrievable." The new version is stored with the purpose, its SHA-256 is that of the
    record it keeps, and GET /ropa names it."""
    before = _latest(client, auth)
    assert client.post("/api/v1/purposes", json=NEW, headers=auth).status_code == 201
    after = _latest(client, auth)
    assert after["number"] == before["number"] + 1
    assert "purpose loyalty.points" in after["cause"]
    changes = client.get(f"/api/v1/ropa/versions/{after['number']}/changes", headers=auth).json
    assert (changes["previous"], changes["activities_added"], changes["activities_removed"],
            changes["activities_changed"]) == (before["number"], ["loyalty.points"], [], [])
    stored = client.get(f"/api/v1/ropa/versions/{after['number']}", headers=auth).json
    text = json.dumps(stored["record"], sort_keys=True, separators=(",", ":"))
    assert hashlib.sha256(text.encode()).hexdigest() == stored["sha256"] == after["sha256"]
    assert "loyalty.points" in [a["purpose"] for a in stored["record"]["activities"]]
    ropa = client.get("/api/v1/ropa", headers=auth).json
    assert ropa["version"]["number"] == after["number"]
    assert ropa["version"]["sha256"] == after["sha256"]


def test_no_change_to_the_record_stores_no_new_version(
        client: FlaskClient, auth: dict[str, str], hub: Hub) -> None:
    """R-ROPA-01: a version is a change of the record: reading it, a change the record does
    not show (a translation, a rotated key), or a refused change adds none."""
    assert client.post("/api/v1/purposes", json=NEW, headers=auth).status_code == 201
    first = _versions(client, auth)
    client.get("/api/v1/ropa", headers=auth)
    client.get("/api/v1/ropa?format=csv", headers=auth)
    translated = client.patch("/api/v1/purposes/loyalty.points", headers=auth, json={
        "translations": {"de": {"title": "Treuepunkte",
                                "description": "Treuepunkte sammeln und einlösen."}}})
    assert translated.status_code == 200, translated.json
    assert client.post("/api/v1/purposes", json=NEW, headers=auth).status_code == 409
    assert client.post("/api/v1/purposes", json={**NEW, "key": "k.high", "risk": "high"},
                       headers=auth).status_code == 409
    # a restart with the same configuration stores nothing either
    again = make_hub(Path(str(hub.settings.instance_path.parent)), hub.settings.database_url,
                     root_key_file=hub.settings.root_key_path)
    again.close()
    assert _versions(client, auth) == first


def test_a_changed_purpose_is_a_version_listing_each_changed_field_before_and_after(
        client: FlaskClient, auth: dict[str, str]) -> None:
    """R-ROPA-01: the diff against the version before names the activity and each field,
    with its value before and after; other sections are named when they change."""
    assert client.post("/api/v1/purposes", json=NEW, headers=auth).status_code == 201
    patched = client.patch("/api/v1/purposes/loyalty.points", headers=auth, json={
        "recipients": ["loyalty", "points partner"], "transfers": [TRANSFER]})
    assert patched.status_code == 200, patched.json
    latest = _latest(client, auth)
    changes = client.get(f"/api/v1/ropa/versions/{latest['number']}/changes",
                         headers=auth).json
    assert changes["activities_added"] == changes["activities_removed"] == []
    [changed] = changes["activities_changed"]
    assert changed["purpose"] == "loyalty.points"
    assert changed["fields"]["recipients"] == {"before": ["loyalty"],
                                               "after": ["loyalty", "points partner"]}
    assert changed["fields"]["transfers"] == {"before": [], "after": [TRANSFER]}
    assert changed["fields"]["third_country_transfers"]["before"] == "none"
    assert set(changed["fields"]) == {"recipients", "transfers", "third_country_transfers"}
    assert changes["sections_changed"] == []
    made = client.post("/api/v1/systems", json={"name": "points-crm", "scopes": ["consents:read"]},
                       headers=auth)
    assert made.status_code == 201
    latest = _latest(client, auth)
    assert latest["cause"] == "changed: system points-crm"
    changes = client.get(f"/api/v1/ropa/versions/{latest['number']}/changes",
                         headers=auth).json
    assert changes["sections_changed"] == ["systems"] and changes["activities_changed"] == []


def test_unknown_versions_are_404_and_versions_need_audit_read(
        client: FlaskClient, auth: dict[str, str], hub: Hub) -> None:
    """An unknown number is 404 (a problem document); reading versions needs audit:read."""
    for url in ("/api/v1/ropa/versions/999", "/api/v1/ropa/versions/999/changes",
                "/api/v1/ropa/versions/0", "/api/v1/ropa/versions/x1",
                "/api/v1/ropa/versions/99999999999999999999/changes",
                "/api/v1/ropa/versions/4294967296"):
        resp = client.get(url, headers=auth)
        assert resp.status_code == 404 and resp.content_type == "application/problem+json"
    reader = {"Authorization": f"Bearer {new_key(hub, 'no-audit', ['consents:read'])}"}
    for url in ("/api/v1/ropa/versions", "/api/v1/ropa/versions/1",
                "/api/v1/ropa/versions/1/changes"):
        assert client.get(url, headers=reader).status_code == 403, url


def test_each_activity_has_the_seven_art_30_elements_from_the_registries(
        client: FlaskClient, auth: dict[str, str], catalogue: None) -> None:
    """R-ROPA-01: `GET /ropa`: every activity carries all seven Art. 30(1) elements, and
    subjects, transfers, automated decisions and risk are the purpose's, never fixed text."""
    made = client.post("/api/v1/purposes", headers=auth, json={
        **NEW, "data_subject_categories": ["members of the loyalty club"],
        "transfers": [TRANSFER], "automated_decisions": DECISION, "risk": "high",
        "dpia_ref": "DPIA-9"})
    assert made.status_code == 201, made.json
    ropa = client.get("/api/v1/ropa", headers=auth).json
    assert ropa["controller"]["name"] and ropa["controller"]["contact"]  # (a)
    assert ropa["controller"]["dpo"]
    for activity in ropa["activities"]:
        for element in ART_30_ELEMENTS:
            assert element in activity and activity[element] is not None, (
                activity["purpose"], element)
        assert activity["categories_of_data_subjects"], activity["purpose"]
        assert activity["security_measures"], activity["purpose"]
    loyalty = next(a for a in ropa["activities"] if a["purpose"] == "loyalty.points")
    assert loyalty["categories_of_data_subjects"] == ["members of the loyalty club"]
    assert loyalty["transfers"] == [TRANSFER]
    assert loyalty["third_country_transfers"] == (
        "Support desk Inc. (US): standard contractual clauses (2021/914)")
    assert (loyalty["automated_decisions"], loyalty["risk"], loyalty["dpia_ref"]) == (
        DECISION, "high", "DPIA-9")
    partners = next(a for a in ropa["activities"] if a["purpose"] == "advertising.partners")
    assert [t["country"] for t in partners["transfers"]] == ["US"]
    fraud = next(a for a in ropa["activities"] if a["purpose"] == "fraud_prevention")
    assert fraud["categories_of_data_subjects"] == ["customers", "people who order as guests"]
    assert (fraud["transfers"], fraud["third_country_transfers"]) == ([], "none")
    names = [s["name"] for s in ropa["systems"]]
    assert "test-admin" in names and names == sorted(names)
    csv_text = client.get("/api/v1/ropa?format=csv", headers=auth).get_data(as_text=True)
    assert "Support desk Inc. (US)" in csv_text and "DPIA-9" in csv_text


def test_the_security_measures_follow_the_configuration(tmp_path: Path, db_url: str) -> None:
    """R-ROPA-01, Art. 30(1)(g): TLS, checkpoint signing and the key store are what this
    deployment's settings say; another configuration at start is a new version."""
    answers = []
    for n, (base_url, every) in enumerate((("http://127.0.0.1:8000", 25),
                                           ("https://privacy.shop.example", 100))):
        hub = make_hub(tmp_path, db_url, base_url=base_url, audit_checkpoint_every=every)
        try:
            client = create_app(hub=hub).test_client()
            auth = {"Authorization": f"Bearer {new_key(hub, f'auditor-{n}', ['audit:read'])}"}
            answers.append((client.get("/api/v1/ropa", headers=auth).json,
                            _versions(client, auth)))
        finally:
            hub.close()
    (plain, plain_versions), (tls, tls_versions) = answers
    assert any("No TLS configured" in m for m in plain["security_measures"])
    assert any("TLS in transit" in m and "https" in m for m in tls["security_measures"])
    assert any("every 25 entries" in m for m in plain["security_measures"])
    assert any("every 100 entries" in m for m in tls["security_measures"])
    assert any("kept in the main database" in m for m in tls["security_measures"])
    # each activity states the measures too (the suppression list's is always there)
    assert "TLS in transit" in tls["activities"][0]["security_measures"]
    assert tls["version"]["number"] == tls_versions[0]["number"]
    # the start with the other configuration stored a version of its own
    started = [v for v in tls_versions if v["cause"] == "configuration at start"]
    assert started[0]["number"] > plain_versions[0]["number"]


def test_the_console_page_names_the_version_and_lists_the_versions(
        hub: Hub, client: FlaskClient, auth: dict[str, str]) -> None:
    """R-ROPA-01 in the console: the record's version, and its versions newest first."""
    from tests.console import make_staff, signed_in_client

    assert client.post("/api/v1/purposes", json=NEW, headers=auth).status_code == 201
    latest = _latest(client, auth)
    staff = signed_in_client(client, make_staff(hub, "auditor"))
    page = staff.get("/console/ropa/").get_data(as_text=True)
    assert f"Version {latest['number']}, SHA-256 {latest['sha256'][:16]}" in page
    assert 'id="versions-heading"' in page
    assert page.count("<tr><td class=\"num\">") == len(_versions(client, auth))
    assert "changed: purpose loyalty.points" in page
