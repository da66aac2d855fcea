"""The console's records of processing (Art. 30(1)): readable sections per activity, and
downloads byte for byte what the API gives (R-ROPA-01, R-ROPA-02)."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from privacy_hub.hub import Hub
from privacy_hub.usecases import accountability
from tests.console import make_staff, signed_in_client

FROZEN = "2026-05-04T10:11:12Z"


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """generated_at is the time of the call: one time for both calls."""
    from datetime import datetime

    moment = datetime.fromisoformat(FROZEN.replace("Z", "+00:00"))
    monkeypatch.setattr(accountability, "utcnow", lambda: moment)


def test_the_page_shows_every_activity_with_the_art_30_elements(
        hub: Hub, client: FlaskClient, catalogue: None) -> None:
    """R-ROPA-01: controller and DPO, purposes, subjects and data, recipients, transfers,
    erasure limits and security measures, for each activity."""
    staff = signed_in_client(client, make_staff(hub, "auditor"))
    page = staff.get("/console/ropa/").get_data(as_text=True)
    with hub.sessions() as session:
        record = accountability.records_of_processing(hub, session)
    assert record["activities"]
    assert record["controller"]["name"] in page and record["controller"]["dpo"] in page
    for activity in record["activities"]:
        assert f'id="activity-{activity["purpose"]}"' in page
    assert page.count("Third-country transfers and safeguards") == len(record["activities"])
    assert page.count("Erasure time limit") == len(record["activities"])
    assert page.count("Security measures") == len(record["activities"])


def test_the_json_download_is_the_apis_byte_for_byte(
        hub: Hub, client: FlaskClient, catalogue: None, auth: dict[str, str],
        frozen_clock: None) -> None:
    """R-ROPA-02: the same record for the supervisory authority, wherever it is taken."""
    api = client.get("/api/v1/ropa", headers=auth)
    staff = signed_in_client(client, make_staff(hub, "dpo"))
    console = staff.get("/console/ropa/ropa.json")
    assert api.status_code == console.status_code == 200
    assert FROZEN.encode() in api.data
    assert console.data == api.data
    assert "attachment" in console.headers["Content-Disposition"]


def test_the_csv_download_is_the_apis_byte_for_byte(
        hub: Hub, client: FlaskClient, catalogue: None, auth: dict[str, str],
        frozen_clock: None) -> None:
    """R-ROPA-02: ?format=csv and the console's CSV are the same bytes."""
    api = client.get("/api/v1/ropa?format=csv", headers=auth)
    staff = signed_in_client(client, make_staff(hub, "admin"))
    console = staff.get("/console/ropa/ropa.csv")
    assert api.status_code == console.status_code == 200
    assert console.data == api.data and console.data.count(b"\n") > 5
    assert console.mimetype == "text/csv"


def test_an_agent_may_not_open_the_records(hub: Hub, client: FlaskClient) -> None:
    staff = signed_in_client(client, make_staff(hub, "agent"))
    for path in ("/console/ropa/", "/console/ropa/ropa.json", "/console/ropa/ropa.csv"):
        assert staff.get(path).status_code == 403
