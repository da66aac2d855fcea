"""Access and portability answers (API.md "Data subject requests"; R-ACC, R-PORT)."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient

from privacy_hub.hub import Hub
from tests.conftest import SEED_EMAIL
from tests.web.test_requests_api import mails


def _customer_with_history(client: FlaskClient, auth: dict[str, str]) -> str:
    cid = str(client.post("/api/v1/customers", json={
        "email": SEED_EMAIL, "first_name": "Ada", "attributes": {"segment": "loyal"}},
        headers=auth).json["id"])
    for purpose in ("analytics.behaviour", "marketing.sms"):
        client.post(f"/api/v1/customers/{cid}/consents", json={"purpose": purpose, "granted": True},
                    headers=auth)
    events = [{"customer_id": cid, "type": "product_view", "purpose": "analytics.behaviour",
               "occurred_at": "2026-11-20T10:00:00Z", "properties": {"sku": f"SKU-{i}"}}
              for i in range(3)]
    assert client.post("/api/v1/events", json={"events": events}, headers=auth).json["accepted"] == 3
    return cid


def _request(client: FlaskClient, auth: dict[str, str], cid: str, kind: str) -> dict[str, Any]:
    rid = client.post("/api/v1/requests", json={
        "type": kind, "customer_id": cid, "identity_verified": True,
        "verification_method": "signed_in"}, headers=auth).json["id"]
    return dict(client.get(f"/api/v1/requests/{rid}", headers=auth).json)


def _zip(data: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name).decode() for name in zf.namelist()}


def test_access_export_is_complete_decrypted_and_explains_the_processing(
        client: FlaskClient, auth: dict[str, str], catalogue: None, hub: Hub) -> None:
    """R-ACC-01, R-ACC-02, R-ACC-08."""
    cid = _customer_with_history(client, auth)
    req = _request(client, auth, cid, "access")
    assert req["status"] == "completed"
    resp = client.get(f"/api/v1/requests/{req['id']}/export", headers=auth)
    assert resp.status_code == 200 and resp.mimetype == "application/zip"
    files = _zip(resp.data)
    assert {"data.json", "information.json", "profile.csv", "consents.csv", "events.csv",
            "requests.csv", "downstream_systems.csv"} <= set(files)
    data = json.loads(files["data.json"])
    assert data["profile"]["email"] == SEED_EMAIL.lower()
    assert data["profile"]["attributes"] == {"segment": "loyal"}
    assert [e["properties"]["sku"] for e in data["events"]] == ["SKU-0", "SKU-1", "SKU-2"]
    assert len(data["consents"]) == 2 and all(c["receipt_jws"].count(".") == 2 for c in data["consents"])
    info = json.loads(files["information.json"])
    for section in ("confirmation", "purposes", "categories", "recipients", "retention", "rights",
                    "complaint", "source", "automated_decisions", "transfers"):
        assert info[section], section
    keys = {p["purpose"] for p in info["purposes"]}
    assert {"analytics.behaviour", "marketing.sms", "orders.fulfilment"} <= keys
    assert "personalisation.recommendations" not in keys  # tailored: no consent given
    rows = list(csv.DictReader(io.StringIO(files["events.csv"])))
    assert len(rows) == 3
    assert "\\x01" not in files["data.json"] and "kek" not in files["data.json"]


def test_portability_holds_only_what_the_subject_provided(
        client: FlaskClient, auth: dict[str, str], catalogue: None) -> None:
    """R-PORT-02: inferred attributes are in the access export, not the portability one."""
    cid = _customer_with_history(client, auth)
    req = _request(client, auth, cid, "portability")
    data = json.loads(_zip(client.get(f"/api/v1/requests/{req['id']}/export",
                                      headers=auth).data)["data.json"])
    assert data["kind"] == "portability" and "attributes" not in data["profile"]
    assert data["profile"]["email"] == SEED_EMAIL.lower() and len(data["events"]) == 3
    after = client.get(f"/api/v1/consent-check?customer_id={cid}&purpose=marketing.sms",
                       headers=auth).json
    assert after["allowed"] is True  # R-PORT-01: an export changes nothing


def test_export_is_encrypted_at_rest_and_the_subject_link_expires(
        client: FlaskClient, auth: dict[str, str], catalogue: None, hub: Hub) -> None:
    """R-ACC-06: an encrypted archive behind a time-limited link, never an attachment."""
    cid = _customer_with_history(client, auth)
    req = _request(client, auth, cid, "access")
    folder = hub.settings.instance_path / "exports"
    (stored,) = list(folder.iterdir())
    assert SEED_EMAIL.encode() not in stored.read_bytes() and b"SKU-0" not in stored.read_bytes()
    assert oct(stored.stat().st_mode & 0o777) == "0o600"
    (mail,) = [m for m in mails(hub) if m["template"] == "request_completed"]
    link = mail["secrets"]["link"].removeprefix(hub.settings.base_url)
    got = client.get(link)
    assert got.status_code == 200 and "data.json" in _zip(got.data)
    assert client.get(link[:-2] + ("AA" if not link.endswith("AA") else "BB")).status_code == 410
    from privacy_hub.rights.exports import Exports

    with hub.sessions() as s:
        old = Exports(hub).link(s, req["id"], datetime.now(UTC) - timedelta(seconds=1))
    assert client.get(old.removeprefix(hub.settings.base_url)).status_code == 410


def test_exports_are_deleted_after_their_retention(
        client: FlaskClient, auth: dict[str, str], catalogue: None, hub: Hub) -> None:
    import audit  # noqa: F401 - the deletion is audited by the job
    from privacy_hub.db import transaction
    from privacy_hub.rights.exports import Exports

    cid = _customer_with_history(client, auth)
    req = _request(client, auth, cid, "access")
    with transaction(hub.sessions) as s:
        assert Exports(hub).delete_due(s, datetime.now(UTC) + timedelta(days=31)) == 1
    assert list((hub.settings.instance_path / "exports").iterdir()) == []
    assert client.get(f"/api/v1/requests/{req['id']}/export", headers=auth).status_code == 410


def test_export_waits_for_systems_and_merges_what_they_send(
        client: FlaskClient, auth: dict[str, str], catalogue: None) -> None:
    system = client.post("/api/v1/systems", json={
        "name": "shop-orders", "scopes": ["requests:read"],
        "webhook_url": "http://127.0.0.1:9/hook"}, headers=auth).json
    cid = _customer_with_history(client, auth)
    req = _request(client, auth, cid, "access")
    assert req["status"] == "processing"
    assert client.get(f"/api/v1/requests/{req['id']}/export", headers=auth).status_code == 409
    own = {"Authorization": f"Bearer {system['api_key']}"}
    done = client.post(f"/api/v1/requests/{req['id']}/systems/shop-orders", json={
        "status": "done", "data": {"orders": [{"id": "A-1", "total": "19.90"}]}}, headers=own)
    assert done.json["status"] == "completed"
    data = json.loads(_zip(client.get(f"/api/v1/requests/{req['id']}/export",
                                      headers=auth).data)["data.json"])
    assert data["downstream_systems"] == [{"system": "shop-orders", "status": "done",
                                           "data": {"orders": [{"id": "A-1", "total": "19.90"}]},
                                           "redacted_third_party": 0}]


def test_access_export_has_a_readable_html_summary_with_everything_escaped(
        client: FlaskClient, auth: dict[str, str], catalogue: None) -> None:
    """R-ACC-04: a commonly used human-readable part (text/html) beside the JSON and CSV,
    rendered from the same data; values are escaped, never markup."""
    cid = _customer_with_history(client, auth)
    client.patch(f"/api/v1/customers/{cid}", json={"last_name": "<script>alert(1)</script>"},
                 headers=auth)
    client.post(f"/api/v1/customers/{cid}/statements",
                json={"text": "I moved in May & the old address is wrong.",
                      "concerns": ["address"]}, headers=auth)
    req = _request(client, auth, cid, "access")
    files = _zip(client.get(f"/api/v1/requests/{req['id']}/export", headers=auth).data)
    page = files["index.html"]
    assert page.startswith("<!doctype html>")
    assert SEED_EMAIL.lower() in page and "SKU-2" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "I moved in May &amp; the old address is wrong." in page
    assert "analytics.behaviour" in page and "Art. 77" in page
    data = json.loads(files["data.json"])
    assert data["profile"]["last_name"] == "<script>alert(1)</script>"
