"""Storage limitation (R-RET-01, Art. 5(1)(e)): the retention pass empties each store
exactly on time and touches nothing else, in short batches, audited with counts only; the
workers run it once a day. The clock is passed in (``now``, the worker's clock): nothing
sleeps. On SQLite and PostgreSQL. The table itself, the API, the records of processing
and the CLI: tests/web/test_retention_policies.py."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import audit
from audit.models import AuditEntry
from consent.models import BannerChoice, ConfirmationToken, ConsentCheck
from dsar.models import DataSubjectRequest, RequestHistory, RequestSystem
from privacy_hub.config import Settings
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from privacy_hub.jobs.outbox import OutboxJob
from privacy_hub.jobs.worker import Worker
from privacy_hub.models import ExportFile, IdempotencyRecord, SignInLink
from privacy_hub.usecases.retention import AUDIT_ACTION, run_retention
from privacy_hub.vault.models import CustomerEvent, RetainedRecord
from tests.conftest import SEED_EMAIL

T0 = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
#: the catalogue's periods used below
ANALYTICS_DAYS, INVOICING_DAYS = 395, 3650


# -- each store, on time -----------------------------------------------------------------
@dataclass(frozen=True)
class Store:
    """How to put one row into a store, dated ``when`` (what its period counts from), and
    how many rows of that kind there are."""

    name: str
    days: Callable[[Settings], int]
    seed: Callable[[Hub, Session, datetime], None]
    count: Callable[[Session], int]


def _n(session: Session, model: Any, *where: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _id() -> str:
    return str(uuid.uuid4())


def _event(_hub: Hub, s: Session, when: datetime) -> None:
    s.add(CustomerEvent(id=_id(), customer_id=_id(), purpose="analytics.behaviour",
                        occurred_at=when, recorded_at=when, payload_ct=b"sealed"))


def _retained(_hub: Hub, s: Session, when: datetime) -> None:
    s.add(RetainedRecord(id=_id(), customer_id=_id(), purpose="invoicing",
                         legal_basis="legal_obligation",
                         hold_until=when + timedelta(days=INVOICING_DAYS),
                         fields_ct=b"sealed", created_at=when))


def _export(hub: Hub, s: Session, when: datetime) -> None:
    rid = _id()
    folder = hub.settings.instance_path / "exports"
    folder.mkdir(exist_ok=True)
    (folder / f"{rid}.zip.enc").write_bytes(b"sealed")
    s.add(ExportFile(request_id=rid, customer_id=_id(), file=f"{rid}.zip.enc",
                     wrapped_key=b"wrapped", size=6, created_at=when,
                     link_expires_at=when + 7 * DAY,
                     delete_at=when + timedelta(days=hub.settings.retention_exports_days)))


def _live_exports(s: Session) -> int:
    return _n(s, ExportFile, ExportFile.deleted_at.is_(None))


def _request(_hub: Hub, s: Session, when: datetime) -> None:
    rid = _id()
    s.add(DataSubjectRequest(id=rid, type="access", status="completed", customer_id=_id(),
                             channel="api", received_at=when - 9 * DAY,
                             due_at=when + 20 * DAY, completed_at=when,
                             created_at=when - 9 * DAY, updated_at=when))
    s.add(RequestHistory(request_id=rid, from_status="processing", to_status="completed",
                         event="completed", at=when, actor_type="job"))
    s.add(RequestSystem(request_id=rid, system_id=_id(), system="crm", status="done",
                        updated_at=when))


def _requests(s: Session) -> int:
    return _n(s, DataSubjectRequest) + _n(s, RequestHistory) + _n(s, RequestSystem)


def _tokens(_hub: Hub, s: Session, when: datetime) -> None:
    s.add(ConfirmationToken(token_hash=uuid.uuid4().bytes * 2, event_id=_id(),
                            customer_id=_id(), purpose="marketing.email", expires_at=when))
    s.add(SignInLink(token_hash=uuid.uuid4().bytes * 2, customer_id=_id(),
                     created_at=when - DAY, expires_at=when + DAY, used_at=when))


def _token_rows(s: Session) -> int:
    return _n(s, ConfirmationToken) + _n(s, SignInLink)


def _job(kind: str, status: str) -> Callable[[Hub, Session, datetime], None]:
    def seed(_hub: Hub, s: Session, when: datetime) -> None:
        s.add(OutboxJob(id=_id(), kind=kind, status=status, attempts=1, created_at=when,
                        delivered_at=when if status == "delivered" else None))
    return seed


def _mail(hub: Hub, s: Session, when: datetime) -> None:
    _job("mail", "dead")(hub, s, when)
    folder = hub.settings.instance_path / "outbox"
    folder.mkdir(exist_ok=True)
    (folder / f"{when:%Y%m%dT%H%M%S}-{_id()}.eml").write_text(f"To: {SEED_EMAIL}\n")


def _mails(hub: Hub) -> Callable[[Session], int]:
    def count(s: Session) -> int:
        files = len(list((hub.settings.instance_path / "outbox").glob("*.eml")))
        return _n(s, OutboxJob, OutboxJob.kind == "mail") + files
    return count


def _check(_hub: Hub, s: Session, when: datetime) -> None:
    s.add(ConsentCheck(checked_at=when, system="crm", customer_id=_id(),
                       purpose="marketing.email", allowed=True, reason="granted", via="check"))


def _idempotency(_hub: Hub, s: Session, when: datetime) -> None:
    s.add(IdempotencyRecord(system_id=_id(), key=_id(), request_hash=b"h" * 32,
                            status_code=201, response_ct=b"sealed", created_at=when))


def _banner(_hub: Hub, s: Session, when: datetime) -> None:
    s.add(BannerChoice(id=_id(), visitor_id=_id(), categories="{}", action="reject_all",
                       created_at=when - 390 * DAY, expires_at=when))


def stores(hub: Hub) -> dict[str, Store]:
    """Every store the pass sweeps on a date of its own (consent evidence: see
    tests/web/test_consent_proof.py; the audit log: below)."""
    def jobs(kind: str) -> Callable[[Session], int]:
        return lambda s: _n(s, OutboxJob, OutboxJob.kind == kind)

    return {s.name: s for s in (
        Store("customer_events", lambda _: ANALYTICS_DAYS, _event,
              lambda s: _n(s, CustomerEvent)),
        Store("legal_retention", lambda _: INVOICING_DAYS, _retained,
              lambda s: _n(s, RetainedRecord)),
        Store("exports", lambda st: st.retention_exports_days, _export, _live_exports),
        Store("dsar_records", lambda st: st.retention_requests_days, _request, _requests),
        Store("verification_tokens", lambda st: st.retention_tokens_days, _tokens,
              _token_rows),
        Store("webhook_deliveries", lambda st: st.retention_outbox_days,
              _job("webhook", "delivered"), jobs("webhook")),
        Store("mail_outbox", lambda st: st.retention_outbox_days, _mail, _mails(hub)),
        Store("background_jobs", lambda st: st.retention_outbox_days,
              _job("export_delete", "cancelled"), jobs("export_delete")),
        Store("check_log", lambda st: st.retention_check_log_days, _check,
              lambda s: _n(s, ConsentCheck)),
        Store("idempotency_records", lambda st: st.retention_idempotency_days, _idempotency,
              lambda s: _n(s, IdempotencyRecord)),
        Store("banner_choices", lambda st: st.retention_banner_choices_days, _banner,
              lambda s: _n(s, BannerChoice)),
    )}


STORES = ["customer_events", "legal_retention", "exports", "dsar_records",
          "verification_tokens", "webhook_deliveries", "mail_outbox", "background_jobs",
          "check_log", "idempotency_records", "banner_choices"]


def _seed_all(hub: Hub, when: datetime) -> None:
    with transaction(hub.sessions) as s:
        for store in stores(hub).values():
            store.seed(hub, s, when)


def _counts(hub: Hub) -> dict[str, int]:
    with hub.sessions() as s:
        return {name: store.count(s) for name, store in stores(hub).items()}


@pytest.mark.parametrize("name", STORES)
def test_each_store_is_emptied_exactly_on_time_and_nothing_else_is_touched(
        hub: Hub, catalogue: None, name: str) -> None:
    """R-RET-01 acceptance: seed every store (one row dated T0, one ten days younger);
    advance the clock to a day before the store's period ends after T0: all kept; a day
    after: its old row is gone, in it alone; the young row and every other store's rows
    (whose periods have not ended, or are still going) stay."""
    hub.settings = hub.settings.with_(retention_batch_size=2)  # several batches
    store = stores(hub)[name]
    _seed_all(hub, T0)
    _seed_all(hub, T0 + 10 * DAY)
    for _ in range(2):  # more than a batch of due rows
        with transaction(hub.sessions) as s:
            store.seed(hub, s, T0)
    days = store.days(hub.settings)
    before = _counts(hub)

    early = run_retention(hub, T0 + timedelta(days=days) - DAY)
    assert early[name] == 0
    assert _counts(hub)[name] == before[name]

    late = run_retention(hub, T0 + timedelta(days=days) + DAY)
    after = _counts(hub)
    assert late[name] > 0 and 0 < after[name] < before[name]  # the young rows stay
    for other, n in after.items():
        if other != name and stores(hub)[other].days(hub.settings) > days + 1:
            assert n == before[other], f"{other} was touched when {name} ran out"


def test_one_pass_past_every_period_leaves_only_what_is_younger(
        hub: Hub, catalogue: None) -> None:
    """R-RET-01: far in the future every store is emptied of what ran out, and the counts
    the pass returns are what went."""
    _seed_all(hub, T0)
    before = _counts(hub)
    counts = run_retention(hub, T0 + timedelta(days=INVOICING_DAYS + 2))
    assert all(n == 0 for n in _counts(hub).values()), _counts(hub)
    for name in STORES:
        assert counts[name] >= 1, name
    assert counts["dsar_records"] == 1 and before["dsar_records"] == 3  # request + 2 rows
    assert not list((hub.settings.instance_path / "exports").glob("*.zip.enc"))


def test_a_pass_is_audited_once_with_counts_only(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str,
        hub: Hub) -> None:
    """R-RET-01: "purge logged": one `retention.pass` entry per pass whose details are the
    counts per store and dry_run, never an id, an address or a name."""
    _seed_all(hub, T0)
    with transaction(hub.sessions) as s:
        _event(hub, s, T0)
    counts = run_retention(hub, T0 + 400 * DAY)
    with hub.sessions() as s:
        (entry,) = s.scalars(select(AuditEntry).where(AuditEntry.action == AUDIT_ACTION))
    details = json.loads(entry.details)
    assert details == {"counts": counts, "dry_run": False}
    assert entry.customer_id is None and entry.actor_type == "job"
    assert all(isinstance(n, int) for n in details["counts"].values())
    assert SEED_EMAIL not in entry.details and customer_id not in entry.details
    assert client.get("/api/v1/audit/verify", headers=auth).json["ok"] is True


def test_a_dry_run_counts_what_would_go_deletes_nothing_and_audits_nothing(
        hub: Hub, catalogue: None) -> None:
    """R-RET-01: a dry run answers how many would go; the real pass then deletes as many."""
    _seed_all(hub, T0)
    before = _counts(hub)
    when = T0 + timedelta(days=INVOICING_DAYS + 2)
    dry = run_retention(hub, when, dry_run=True)
    assert _counts(hub) == before
    with hub.sessions() as s:
        assert _n(s, AuditEntry, AuditEntry.action == AUDIT_ACTION) == 0
    real = run_retention(hub, when)
    assert dry == real and dry["dsar_records"] == 1


def test_audit_entries_are_pruned_through_audit_prune_below_the_period(
        hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """R-RET-01: the audit log is kept longest and pruned by audit.prune (which deletes
    only below a signed checkpoint), in batches, with the period's cutoff."""
    calls: list[tuple[datetime, int]] = []

    def prune(session: Session, *, before: datetime, limit: int) -> int:
        calls.append((before, limit))
        return [limit, 1][len(calls) - 1] if len(calls) <= 2 else 0

    monkeypatch.setattr(audit, "prune", prune, raising=False)
    hub.settings = hub.settings.with_(retention_batch_size=5)
    now = T0 + 9000 * DAY
    counts = run_retention(hub, now)
    cutoff = now - timedelta(days=hub.settings.retention_audit_days)
    assert calls == [(cutoff, 5), (cutoff, 5)] and counts["audit_log"] == 6


def test_the_pass_prunes_old_audit_entries_and_the_rest_of_the_chain_still_verifies(
        hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """R-RET-01 with the real audit.prune: entries older than the audit period go, below a
    signed checkpoint; `audit verify` still proves what is kept."""
    from audit import clock as audit_clock
    from audit import head
    from privacy_hub.usecases.accountability import verify_audit_chain

    now = audit_clock.utcnow()
    with transaction(hub.sessions) as s:
        for n in range(3):
            audit.record(s, actor=audit.Actor("system", "test"), action="test.old",
                         details={"n": n})
    # a later entry, past the checkpoint interval: a signed checkpoint above the old ones
    monkeypatch.setattr(head, "utcnow", lambda: now + timedelta(minutes=10))
    with transaction(hub.sessions) as s:
        audit.record(s, actor=audit.Actor("system", "test"), action="test.later", details={})
    monkeypatch.undo()
    with hub.sessions() as s:
        old = _n(s, AuditEntry)
    later = now + timedelta(days=hub.settings.retention_audit_days + 1)
    counts = run_retention(hub, later)
    assert 3 <= counts["audit_log"] < old + 1
    with hub.sessions() as s:
        assert _n(s, AuditEntry, AuditEntry.action == "test.old") == 0
        report = verify_audit_chain(hub, s)
    assert report["ok"] is True, report
    assert report["pruned_below_seq"] is not None
    # the evidence pack's per-entry check links the first kept entry to the prune note
    from privacy_hub.evidence import _verify
    with hub.sessions() as s:
        first = s.scalars(select(AuditEntry).order_by(AuditEntry.seq).limit(1)).one()
        assert _verify(s, [first])[first.seq] == {"hash_matches": True, "linked": True}


# -- the daily schedule --------------------------------------------------------------------
def _passes(hub: Hub) -> int:
    with hub.sessions() as s:
        return _n(s, AuditEntry, AuditEntry.action == AUDIT_ACTION)


def test_the_workers_run_the_pass_once_a_day_between_them(hub: Hub) -> None:
    """R-RET-01: "a scheduled job": any worker runs the pass when a day has passed since
    the last one began on any worker; another worker, or a restart, does not run it again
    sooner."""
    now = [T0]
    first, second = (Worker(hub, clock=lambda: now[0]), Worker(hub, clock=lambda: now[0]))
    assert first.housekeeping() is not None
    now[0] = T0 + timedelta(hours=1)
    assert second.housekeeping() is None and first.housekeeping() is None
    now[0] = T0 + DAY - timedelta(seconds=1)
    assert Worker(hub, clock=lambda: now[0]).housekeeping() is None  # a restart
    now[0] = T0 + DAY
    assert second.housekeeping() is not None
    assert first.housekeeping() is None
    assert _passes(hub) == 2


def test_two_workers_looking_at_once_run_one_pass(hub: Hub) -> None:
    """R-RET-01: the turn is a conditional update one worker wins."""
    workers = [Worker(hub, clock=lambda: T0) for _ in range(2)]
    results: list[Any] = []
    threads = [threading.Thread(target=lambda w=w: results.append(w.housekeeping()))
               for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r is None for r in results) == [False, True]
    assert _passes(hub) == 1


def test_a_failed_pass_gives_its_turn_back(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """R-RET-01: a pass that fails (the database went away, ...) runs again at the next
    look, not a day later."""
    from privacy_hub.retention import stores as sweeps

    def broken(*_: Any, **__: Any) -> int:
        raise RuntimeError("the database went away")

    with monkeypatch.context() as m:
        m.setattr(sweeps, "legal_retention", broken)
        assert Worker(hub, clock=lambda: T0).housekeeping() is None
    assert Worker(hub, clock=lambda: T0 + timedelta(minutes=5)).housekeeping() is not None
