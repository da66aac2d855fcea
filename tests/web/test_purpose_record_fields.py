"""The purpose registry's Art. 30 and Art. 35 fields: transfers, automated decisions, data
subject categories, risk and DPIA (R-ROPA-01, R-DPBD-03), on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

import audit
from consent import purposes as registry
from consent.errors import DpiaRequired, InvalidInput
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from privacy_hub.usecases import purposes
from tests.web.test_purposes_api import NEW

TRANSFER = {"recipient": "Support desk Inc.", "country": "US",
            "safeguard": "standard contractual clauses (2021/914)"}
DECISION = {"logic": "A score from the order's value and addresses.",
            "significance": "A high score holds the order for a person to check.",
            "consequences": "A held order ships later."}


def _post(client: FlaskClient, auth: dict[str, str], **fields: Any) -> Any:
    return client.post("/api/v1/purposes", json={**NEW, **fields}, headers=auth)


def test_a_new_purpose_has_no_transfer_no_automated_decision_customers_and_standard_risk(
        client: FlaskClient, auth: dict[str, str]) -> None:
    """R-ROPA-01: the new fields are optional and default to none."""
    resp = _post(client, auth)
    assert resp.status_code == 201, resp.json
    assert (resp.json["transfers"], resp.json["automated_decisions"],
            resp.json["data_subject_categories"], resp.json["risk"], resp.json["dpia_ref"]) == (
        [], None, ["customers"], "standard", None)


def test_each_new_purpose_field_round_trips_through_create_read_and_patch(
        client: FlaskClient, auth: dict[str, str]) -> None:
    """R-ROPA-01: transfers with safeguards (Art. 30(1)(e)), automated decisions
    (Art. 22), subject categories (Art. 30(1)(c)), risk and DPIA reference (Art. 35)."""
    given = {"transfers": [TRANSFER], "automated_decisions": DECISION,
             "data_subject_categories": ["customers", "guests"], "risk": "high",
             "dpia_ref": "DPIA-2026-07"}
    resp = _post(client, auth, **given)
    assert resp.status_code == 201, resp.json
    read = client.get("/api/v1/purposes/loyalty.points", headers=auth).json
    assert {k: read[k] for k in given} == given
    other = {"recipient": "Hosting Ltd", "country": "GB", "safeguard": "adequacy decision"}
    patched = client.patch("/api/v1/purposes/loyalty.points", headers=auth, json={
        "transfers": [TRANSFER, other], "automated_decisions": None,
        "data_subject_categories": ["prospects"], "risk": "standard", "dpia_ref": None})
    assert patched.status_code == 200, patched.json
    read = client.get("/api/v1/purposes/loyalty.points", headers=auth).json
    assert (read["transfers"], read["automated_decisions"], read["data_subject_categories"],
            read["risk"], read["dpia_ref"], read["version"]) == (
        [TRANSFER, other], None, ["prospects"], "standard", None, 1)
    # like every descriptive field: the caller says whether the change is material
    material = client.patch("/api/v1/purposes/loyalty.points", headers=auth,
                            json={"transfers": [], "material": True})
    assert material.json["version"] == 2 and material.json["transfers"] == []
    history = client.get("/api/v1/purposes/loyalty.points", headers=auth).json
    assert history["transfers"] == []


def test_invalid_new_fields_are_422_naming_the_field(
        client: FlaskClient, auth: dict[str, str]) -> None:
    """Validation errors name the field; nothing is stored."""
    cases = {
        "transfers": [{**TRANSFER, "country": "DE"}],  # inside the EEA: no transfer
        "automated_decisions": {"logic": "x"},
        "data_subject_categories": [],
        "risk": "extreme",
        "dpia_ref": "",
    }
    for name, value in cases.items():
        resp = _post(client, auth, **{name: value})
        assert resp.status_code == 422, (name, resp.json)
        assert resp.json["errors"] and all(k.split(".")[0] == name for k in resp.json["errors"]), (
            name, resp.json["errors"])
    for country in ("XX", "us", "USA"):
        resp = _post(client, auth, transfers=[{**TRANSFER, "country": country}])
        assert resp.status_code == 422, country
        assert list(resp.json["errors"]) == ["transfers.0.country"], country
    extra = _post(client, auth, transfers=[{**TRANSFER, "note": "x"}])
    assert extra.status_code == 422 and list(extra.json["errors"]) == ["transfers.0.note"]
    assert client.get("/api/v1/purposes", headers=auth).json["items"] == []


def test_a_high_risk_purpose_without_a_dpia_is_409_and_with_one_201(
        client: FlaskClient, auth: dict[str, str]) -> None:
    """R-DPBD-03: a purpose flagged risk high cannot be activated without dpia_ref."""
    refused = _post(client, auth, risk="high")
    assert refused.status_code == 409, refused.json
    assert refused.json["type"].endswith("dpia-required")
    assert list(refused.json["errors"]) == ["dpia_ref"]
    assert client.get("/api/v1/purposes/loyalty.points", headers=auth).status_code == 404
    created = _post(client, auth, risk="high", dpia_ref="DPIA-2026-07")
    assert created.status_code == 201, created.json
    assert (created.json["risk"], created.json["dpia_ref"]) == ("high", "DPIA-2026-07")


def test_a_purpose_cannot_become_high_risk_or_lose_its_dpia_without_one_by_patch(
        client: FlaskClient, auth: dict[str, str]) -> None:
    """R-DPBD-03 on PATCH: raising the risk needs the DPIA, and a high-risk purpose keeps it."""
    assert _post(client, auth).status_code == 201
    raised = client.patch("/api/v1/purposes/loyalty.points", json={"risk": "high"},
                          headers=auth)
    assert raised.status_code == 409 and list(raised.json["errors"]) == ["dpia_ref"]
    assert client.get("/api/v1/purposes/loyalty.points", headers=auth).json["risk"] == "standard"
    ok = client.patch("/api/v1/purposes/loyalty.points", headers=auth,
                      json={"risk": "high", "dpia_ref": "DPIA-1"})
    assert ok.status_code == 200 and ok.json["risk"] == "high"
    dropped = client.patch("/api/v1/purposes/loyalty.points", json={"dpia_ref": None},
                           headers=auth)
    assert dropped.status_code == 409
    assert client.get("/api/v1/purposes/loyalty.points", headers=auth).json["dpia_ref"] == "DPIA-1"


def test_the_new_fields_are_in_the_openapi_document(client: FlaskClient) -> None:
    """The served OpenAPI document describes every new field, with the risk's values."""
    schemas = client.get("/api/openapi.json").json["components"]["schemas"]
    for name in ("PurposeCreate", "PurposePatch", "Purpose"):
        props = schemas[name]["properties"]
        for field in ("transfers", "automated_decisions", "data_subject_categories", "risk",
                      "dpia_ref"):
            assert field in props, (name, field)
        assert props["risk"]["enum"] == ["standard", "high"], name


def test_the_registry_refuses_a_purpose_reading_a_field_the_vault_does_not_have(
        hub: Hub) -> None:
    """R-DPBD-02: behind every interface (API, console, CLI), a purpose's ``fields`` name
    stored customer fields only; the registry's own check, not just the API schema's."""
    with pytest.raises(InvalidInput) as refused, transaction(hub.sessions) as session:
        purposes.create(session, {**NEW, "fields": ["email", "shoe_size"]},
                        actor=audit.Actor("cli", "tests"))
    assert list(refused.value.errors) == ["fields"]
    with hub.sessions() as session:
        assert registry.all_purposes(session) == []


def test_the_registry_checks_the_new_fields_behind_the_api_schema(hub: Hub) -> None:
    """The CLI and the demo catalogue reach the registry without the API's schema: it names
    the same fields, and a high-risk purpose needs its DPIA there too (R-DPBD-03)."""
    bad = {"transfers": [{**TRANSFER, "country": "FR"}], "automated_decisions": {"logic": ""},
           "data_subject_categories": [""], "risk": "extreme"}
    with pytest.raises(InvalidInput) as refused, transaction(hub.sessions) as session:
        purposes.create(session, {**NEW, **bad}, actor=audit.Actor("cli", "tests"))
    assert sorted(refused.value.errors) == sorted(bad)
    with pytest.raises(DpiaRequired), transaction(hub.sessions) as session:
        purposes.create(session, {**NEW, "risk": "high"}, actor=audit.Actor("cli", "tests"))
