"""A pruned audit log through the API, the console and the CLI, on SQLite and PostgreSQL
(R-RET-01: audit entries past their period are deleted below a signed checkpoint, and
`GET /api/v1/audit/verify` still proves the rest; paging keeps working)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import delete

import audit
from privacy_hub.cli import main
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from tests.console import csrf, make_staff, signed_in_client
from tests.hubs import make_hub
from tests.web.conftest import new_key

LONG_AGO = datetime(2018, 3, 1, 8, 0, tzinfo=UTC)
CUSTOMER = "0b0c8a40-1d7e-4c39-9d0b-5b1e9a6f1c2d"


class Clock:
    """The time the chain stamps entries with, moved by the test (no sleeping)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        self.now += timedelta(microseconds=1)
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The chain's clock, years ago until the test moves it."""
    clock = Clock(LONG_AGO)
    monkeypatch.setattr("audit.head.utcnow", clock)
    return clock


@pytest.fixture
def hub(tmp_path: Path, db_url: str, clock: Clock) -> Iterator[Hub]:
    """A hub that signs a checkpoint every 5 entries, so a short test has some to prune to;
    set up (and its first entries written) years ago."""
    h = make_hub(tmp_path, db_url, audit_checkpoint_every=5)
    yield h
    h.close()


@pytest.fixture
def pruned(hub: Hub, clock: Clock) -> tuple[Hub, dict[str, str], int]:
    """Old entries (and the API key's) written years ago, newer ones today, the old ones
    pruned: the hub, the API's auth header, and where the kept chain starts."""
    auth = {"Authorization": f"Bearer {new_key(hub, 'auditor', ['audit:read'])}"}
    write(hub, 23)
    clock.now = datetime.now(UTC)
    write(hub, 6)
    with transaction(hub.sessions) as session:
        deleted = audit.prune(session, before=clock.now - timedelta(days=365), limit=1000)
    with hub.sessions() as session:
        first = session.scalars(audit.AuditEntry.__table__.select()
                                .with_only_columns(audit.AuditEntry.seq)
                                .order_by(audit.AuditEntry.seq).limit(1)).one()
    assert deleted > 20
    assert first == deleted + 1
    return hub, auth, first


def write(hub: Hub, n: int) -> None:
    for i in range(n):
        with transaction(hub.sessions) as session:
            audit.record(session, actor=audit.Actor("cli", "tests"), action="test.happened",
                         customer_id=CUSTOMER, details={"n": i})


def test_verify_answers_ok_and_says_where_the_kept_chain_starts(
        pruned: tuple[Hub, dict[str, str], int], client: FlaskClient) -> None:
    """R-RET-01: GET /api/v1/audit/verify proves a pruned chain from its signed anchor."""
    _, auth, first = pruned
    resp = client.get("/api/v1/audit/verify", headers=auth)
    assert resp.status_code == 200
    report = resp.json
    assert report["ok"] is True, report["problem"]
    assert report["first_bad_seq"] is None
    assert (report["first_seq"], report["pruned_below_seq"]) == (first, first)
    assert report["entries"] == report["head"]["seq"] - first + 1


def test_a_deleted_anchor_fails_verification_through_the_api(
        pruned: tuple[Hub, dict[str, str], int], client: FlaskClient) -> None:
    hub, auth, first = pruned
    with transaction(hub.sessions) as session:
        session.execute(delete(audit.AuditCheckpoint)
                        .where(audit.AuditCheckpoint.seq == first - 1))
    report = client.get("/api/v1/audit/verify", headers=auth).json
    assert (report["ok"], report["first_bad_seq"]) == (False, 1)


def _pages(client: FlaskClient, auth: dict[str, str], **query: Any) -> list[int]:
    seqs: list[int] = []
    params: dict[str, Any] = {"limit": 4, **query}
    while True:
        page = client.get("/api/v1/audit", headers=auth, query_string=params)
        assert page.status_code == 200, page.json
        seqs += [item["seq"] for item in page.json["items"]]
        if page.json["next_cursor"] is None:
            return seqs
        params = {"limit": 4, "cursor": page.json["next_cursor"]}


def test_paging_the_entries_after_a_prune_starts_at_the_first_kept_one(
        pruned: tuple[Hub, dict[str, str], int], client: FlaskClient) -> None:
    """since_seq and cursors keep working: no gap, no pruned entry, every kept one once."""
    _, auth, first = pruned
    everything = _pages(client, auth)
    assert everything[0] == first
    assert everything == list(range(first, everything[-1] + 1))
    assert _pages(client, auth, since_seq=3)[:3] == [first, first + 1, first + 2]
    assert _pages(client, auth, since_seq=first + 1)[0] == first + 2
    customer = _pages(client, auth, customer_id=CUSTOMER)
    assert customer and min(customer) >= first


def test_the_openapi_document_describes_the_pruned_fields(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").json
    props = spec["components"]["schemas"]["Verify"]["properties"]
    for name in ("first_seq", "pruned_below_seq"):
        assert props[name]["type"] == "integer"
        assert props[name].get("nullable") is True or "null" in str(props[name])
        assert props[name]["description"]


def test_the_console_verify_page_says_entries_were_pruned(
        pruned: tuple[Hub, dict[str, str], int], client: FlaskClient) -> None:
    hub, _, first = pruned
    staff = signed_in_client(client, make_staff(hub, "auditor"))
    resp = staff.post("/console/audit/verify",
                      data={"csrf_token": csrf(staff, "/console/audit/")})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "The chain is intact" in page
    assert f"Entries before sequence number {first} were deleted" in page


def test_the_cli_reports_the_pruned_chain_as_intact(
        pruned: tuple[Hub, dict[str, str], int], monkeypatch: pytest.MonkeyPatch) -> None:
    hub, _, first = pruned

    def this_hub(*_args: object, **_kw: object) -> Hub:
        return hub

    def keep_open() -> None:
        """The fixture closes the hub."""

    monkeypatch.setattr("privacy_hub.cli._open_hub", this_hub)
    monkeypatch.setattr(hub, "close", keep_open)
    result = CliRunner().invoke(main, ["audit", "verify"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "ok: the chain is intact" in result.output
    assert f"pruned: entries below seq {first}" in result.output
