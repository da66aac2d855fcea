"""Failures on the hot paths answer 503 (retry), never a half-logged answer."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.exc import OperationalError

from audit import head
from privacy_hub.hub import Hub


def test_a_lookup_whose_audit_entry_cannot_be_committed_is_503(
        client: FlaskClient, auth: dict[str, str], customer_id: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import SEED_EMAIL

    def broken(*_args: Any) -> None:
        raise OperationalError("INSERT", None, Exception("disk I/O error"))

    monkeypatch.setattr(head, "append", broken)
    resp = client.post("/api/v1/customers/lookup", json={"email": SEED_EMAIL}, headers=auth)
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "1"
    assert customer_id not in resp.get_data(as_text=True)
    monkeypatch.undo()
    resp = client.post("/api/v1/customers/lookup", json={"email": SEED_EMAIL}, headers=auth)
    assert resp.status_code == 200
    assert resp.json["items"] == [{"id": customer_id}]


def test_a_lost_database_connection_is_503(
        client: FlaskClient, auth: dict[str, str], hub: Hub,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def dropped(*_args: Any, **_kwargs: Any) -> None:
        raise OperationalError("SELECT", None, Exception("server closed the connection"),
                               connection_invalidated=True)

    monkeypatch.setattr(hub.vault, "lookup", dropped)
    resp = client.post("/api/v1/customers/lookup", json={"email": "a@example.org"},
                       headers=auth)
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "1"


def test_other_database_errors_stay_500(
        client: FlaskClient, auth: dict[str, str], hub: Hub,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(*_args: Any, **_kwargs: Any) -> None:
        raise OperationalError("SELECT", None, Exception("no such table: customers"))

    monkeypatch.setattr(hub.vault, "lookup", failing)
    resp = client.post("/api/v1/customers/lookup", json={"email": "a@example.org"},
                       headers=auth)
    assert resp.status_code == 500
