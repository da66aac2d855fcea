"""Fixtures for API tests through Flask's test client, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

import audit
from privacy_hub.app import create_app
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from privacy_hub.systems import SCOPES
from tests.hubs import make_hub


@pytest.fixture
def hub(tmp_path: Path, db_url: str) -> Iterator[Hub]:
    h = make_hub(tmp_path, db_url)
    yield h
    h.close()


@pytest.fixture
def app(hub: Hub) -> Flask:
    return create_app(hub=hub)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def new_key(hub: Hub, name: str, scopes: list[str], purposes: list[str] | None = None) -> str:
    with transaction(hub.sessions) as session:
        _, key, _ = hub.systems.create(session, name=name, scopes=scopes, purposes=purposes,
                                       actor=audit.Actor("cli", "tests"))
    return key


@pytest.fixture
def api_key(hub: Hub) -> str:
    """A key with every scope."""
    return new_key(hub, "test-admin", list(SCOPES))


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


@pytest.fixture
def catalogue(hub: Hub) -> None:
    """The demo e-commerce purposes."""
    from consent import purposes as registry
    from consent.catalogue import ECOMMERCE
    from privacy_hub.vault.models import PERSONAL_FIELDS

    with transaction(hub.sessions) as session:
        for purpose in ECOMMERCE:
            registry.create(session, purpose, actor=audit.Actor("cli", "tests"),
                            allowed_fields=PERSONAL_FIELDS)


@pytest.fixture
def customer_id(client: FlaskClient, auth: dict[str, str]) -> str:
    from tests.conftest import SEED_EMAIL

    resp = client.post("/api/v1/customers", json={"email": SEED_EMAIL, "first_name": "Ada",
                                                   "phone": "+4915112345678"}, headers=auth)
    assert resp.status_code == 201
    return str(resp.json["id"])
