"""The CSVs of an access or portability export each have their header row, even for a table
without rows, so a standard parser reads every file alike (R-PORT-01, R-ACC-04)."""

from __future__ import annotations

import csv
import io

import pytest
from flask.testing import FlaskClient

from tests.web.test_exports_api import _customer_with_history, _request, _zip
from tests.web.test_tcf_api import tc_string

#: the tables a customer may have no rows in
EMPTY_ABLE = ("consents.csv", "tc_strings.csv", "events.csv", "downstream_systems.csv",
              "supplementary_statements.csv", "disclosures.csv")
#: what only the access export holds (not provided by the subject, Art. 20)
ACCESS_ONLY = {"supplementary_statements.csv", "disclosures.csv"}


def _csvs(client: FlaskClient, auth: dict[str, str], request_id: str) -> dict[str, str]:
    resp = client.get(f"/api/v1/requests/{request_id}/export", headers=auth)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return {name: text for name, text in _zip(resp.data).items() if name.endswith(".csv")}


def _read(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def _complete(client: FlaskClient, auth: dict[str, str], cid: str, kind: str,
              system_key: str) -> str:
    req = _request(client, auth, cid, kind)
    done = client.post(f"/api/v1/requests/{req['id']}/systems/shop-orders", json={
        "status": "done", "data": {"orders": [{"id": "A-1"}]}},
        headers={"Authorization": f"Bearer {system_key}"})
    assert done.status_code == 200 and done.json["status"] == "completed", done.json
    return str(req["id"])


@pytest.mark.parametrize("kind", ["access", "portability"])
def test_every_csv_has_its_header_row_even_without_rows(
        client: FlaskClient, auth: dict[str, str], catalogue: None, kind: str) -> None:
    """A customer with nothing in a table gets that table's CSV with the same header row as
    a customer with rows in it, and no data rows."""
    # First the customer with empty tables, while no system takes part in requests.
    empty = client.post("/api/v1/customers", json={"email": "nothing.yet@example.org"},
                        headers=auth).json["id"]
    req = _request(client, auth, empty, kind)
    assert req["status"] == "completed", req
    empty_csvs = _csvs(client, auth, req["id"])

    system = client.post("/api/v1/systems", json={
        "name": "shop-orders", "scopes": ["requests:read"],
        "webhook_url": "http://127.0.0.1:9/hook"}, headers=auth).json
    full = _customer_with_history(client, auth)
    assert client.post(f"/api/v1/customers/{full}/tcf", json={"tc_string": tc_string()},
                       headers=auth).status_code == 201
    assert client.post(f"/api/v1/customers/{full}/statements", json={"text": "I moved."},
                       headers=auth).status_code == 201
    assert client.get(f"/api/v1/customers/{full}/data?purpose=orders.fulfilment",
                      headers=auth).status_code == 200  # a disclosure (R-ACC-03)
    full_csvs = _csvs(client, auth, _complete(client, auth, full, kind, system["api_key"]))

    assert set(empty_csvs) == set(full_csvs)
    expected_empty = set(EMPTY_ABLE) - (ACCESS_ONLY if kind == "portability" else set())
    assert expected_empty <= set(empty_csvs)
    for name, text in empty_csvs.items():
        header, rows = _read(text)
        full_header, full_rows = _read(full_csvs[name])
        assert full_rows, f"{name}: the full customer has rows in every table"
        assert header, f"{name} has no header row"
        assert text.splitlines()[0] == ",".join(header), name
        if name in expected_empty:
            assert rows == [], name
            assert header == full_header, name
    assert "nothing.yet@example.org" not in empty_csvs["requests.csv"]
