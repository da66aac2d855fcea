"""The retention pass's progress (R-RET-01): a caller that watches is told what has run
out before anything is deleted, each batch as it commits and each store as it ends; the
workers' daily pass is told nothing, counts nothing first and prints nothing. On SQLite
and PostgreSQL. The CLI's bar and lines: tests/integration/test_cli_progress_tty.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from consent.models import ConsentCheck
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from privacy_hub.jobs.worker import Worker
from privacy_hub.retention import stores
from privacy_hub.usecases.retention import run_retention
from tests.conftest import SEED_EMAIL
from tests.web.test_retention import INVOICING_DAYS, STORES, T0, _check, _counts, _seed_all


class Recorder:
    """A PassProgress that keeps what it was told."""

    def __init__(self) -> None:
        self.expected: dict[str, int] | None = None
        self.batches: list[tuple[str, int]] = []
        self.ended: list[tuple[str, int]] = []

    def expect(self, counts: dict[str, int]) -> None:
        assert not self.batches, "counted after deleting began"
        self.expected = dict(counts)

    def deleted(self, store: str, rows: int) -> None:
        self.batches.append((store, rows))

    def finished(self, store: str, count: int) -> None:
        self.ended.append((store, count))


def test_a_watched_pass_counts_first_then_reports_each_batch_and_each_store(
        hub: Hub, catalogue: None) -> None:
    """R-RET-01: the counts made before the pass are what it then deletes (an honest
    time left); every committed batch is reported with its store, never more than a
    batch; each store is reported done, in the pass's order, with its count."""
    hub.settings = hub.settings.with_(retention_batch_size=2)
    _seed_all(hub, T0)
    with transaction(hub.sessions) as s:
        for _ in range(4):  # five due in the check log: batches of 2, 2, 1
            _check(hub, s, T0)
    seen = Recorder()
    counts = run_retention(hub, T0 + timedelta(days=INVOICING_DAYS + 2), progress=seen)

    assert seen.expected == counts
    assert seen.ended == list(counts.items())  # every store, in order
    assert [rows for store, rows in seen.batches if store == "check_log"] == [2, 2, 1]
    for name in STORES:
        assert sum(rows for store, rows in seen.batches if store == name) == counts[name], name
    swept = {"customer_events", "exports", "dsar_records", "verification_tokens",
             "webhook_deliveries", "background_jobs", "check_log", "idempotency_records",
             "banner_choices", "disclosures"}
    assert all(rows <= 2 for store, rows in seen.batches if store in swept)
    assert all(n == 0 for n in _counts(hub).values())
    assert SEED_EMAIL not in repr(seen.__dict__)  # the mail file held it: counts only


def test_a_dry_run_is_reported_store_by_store_without_a_count_first(
        hub: Hub, catalogue: None) -> None:
    _seed_all(hub, T0)
    seen = Recorder()
    counts = run_retention(hub, T0 + timedelta(days=INVOICING_DAYS + 2), dry_run=True,
                           progress=seen)
    assert seen.expected is None and seen.batches == []
    assert seen.ended == list(counts.items()) and counts["check_log"] == 1


def test_the_workers_daily_pass_counts_nothing_first_and_prints_nothing(
        hub: Hub, catalogue: None, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    """R-RET-01: the scheduled pass is silent (no progress; no dry run before it)."""
    _seed_all(hub, T0)
    runs: list[bool] = []
    sweep = stores.dsar_records

    def watched(*args: object, dry_run: bool, **kw: object) -> int:
        runs.append(dry_run)
        return sweep(*args, dry_run=dry_run, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(stores, "dsar_records", watched)
    when = T0 + timedelta(days=INVOICING_DAYS + 2)
    assert Worker(hub, clock=lambda: when).housekeeping() is not None
    assert runs == [False]
    with hub.sessions() as s:
        assert s.scalar(select(func.count()).select_from(ConsentCheck)) == 0  # it ran
    out, err = capfd.readouterr()
    assert out == "" and err == ""
