"""Shared fixtures: a real PostgreSQL server for the session, and a fresh database per test.

Tests that take ``db_url`` run twice: on SQLite (the embedded default) and on PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.pg import PostgresServer, postgres_server

# The suite runs in parallel on a small shared machine: how fast Hypothesis draws inputs
# there says nothing about the code, so its timing checks would only make tests flaky.
settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")

# A recognisable seed: tests assert it never shows up where it must not.
SEED_EMAIL = "ada.lovelace+seed@example.org"
SEED_NAME = "Lovelace-Seedname"
SEED_PHONE = "+4915112345678"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def db_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(db_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database on the backend under test."""
    if db_backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'hub.db'}"
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield server.create_database(name)
    server.drop_database(name)


@pytest.fixture(autouse=True)
def _no_hub_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build their own settings: nothing leaks in from the developer's shell."""
    for key in list(os.environ):
        if key.startswith("PRIVACY_HUB_"):
            monkeypatch.delenv(key)
