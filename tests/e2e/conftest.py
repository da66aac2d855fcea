"""Fixtures for end-to-end tests: a real hub served by `privacy-hub serve` (granian), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.live import LiveHub


@pytest.fixture
def live_hub(tmp_path: Path, db_backend: str, request: pytest.FixtureRequest) -> Iterator[LiveHub]:
    """An initialised instance (``privacy-hub init --demo``), not yet serving.

    SQLite: the embedded default, everything in the instance folder. PostgreSQL: a fresh
    database on the suite's server, with secrets passed in the environment.
    """
    database_url = None
    if db_backend == "postgresql":
        database_url = request.getfixturevalue("db_url")
    hub = LiveHub(tmp_path / "instance", database_url=database_url)
    try:
        hub.init()
        yield hub
    finally:
        hub.close()  # SIGKILL to the process group, whatever the test left running
