"""Storage limitation (R-RET-01, Art. 5(1)(e)): one retention table names every store with
its period; the retention pass empties each store exactly on time and touches nothing
else, in short batches, audited with counts only; the workers run it once a day; the
API, the CLI and the records of processing show the same table. The clock is passed in
(``now``, the worker's clock): nothing sleeps. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import audit
from audit.models import AuditEntry
from consent.models import BannerChoice, ConfirmationToken, ConsentCheck
from dsar.models import DataSubjectRequest, RequestHistory, RequestSystem
from privacy_hub.config import ConfigError, Settings
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from privacy_hub.jobs.outbox import OutboxJob
from privacy_hub.jobs.worker import Worker
from privacy_hub.migrations import keystore_metadata, main_metadata
from privacy_hub.models import ExportFile, IdempotencyRecord, SignInLink
from privacy_hub.retention.policies import ACTIONS, KEEP, RULES, tables_named
from privacy_hub.usecases.retention import AUDIT_ACTION, run_retention
from privacy_hub.vault.models import CustomerEvent, RetainedRecord
from tests.conftest import SEED_EMAIL
from tests.web.conftest import new_key

T0 = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
#: the catalogue's periods used below
ANALYTICS_DAYS, INVOICING_DAYS = 395, 3650


# -- the table ---------------------------------------------------------------------------
def test_every_table_is_named_by_a_retention_rule() -> None:
    """R-RET-01: no store without a rule. A new table fails here until it is given one."""
    tables = {t for md in [*main_metadata(), *keystore_metadata()] for t in md.tables}
    missing = sorted(tables - tables_named())
    assert not missing, (
        f"table(s) {missing} have no retention rule: add them to a Rule in RULES in "
        "privacy_hub/retention/policies.py (a new store with its period, Settings field and "
        "reason, or the store it belongs to; a table without personal data goes to a KEEP "
        "rule with the reason), and sweep it in privacy_hub/retention/stores.py")
    assert not tables_named() - tables, "a rule names a table that does not exist"


def test_every_rule_states_an_action_and_a_reason_and_a_kept_store_has_no_period() -> None:
    """R-RET-01: none is kept indefinitely without a recorded justification."""
    for rule in RULES:
        assert rule.action in ACTIONS and len(rule.reason) > 40, rule.store
        assert (rule.action == KEEP) == (rule.setting is None and not rule.per_purpose), rule
    audit_rule = next(r for r in RULES if r.store == "audit_log")
    longest = max(int(getattr(Settings, r.setting)) for r in RULES if r.setting)
    assert int(getattr(Settings, "retention_audit_days")) == longest  # kept longest
    assert "justification" in audit_rule.reason


def test_each_period_is_set_by_its_variable_and_a_bad_value_is_a_one_line_error() -> None:
    """R-RET-01: every period can be changed through the environment."""
    for rule in RULES:
        if rule.setting is None:
            continue
        variable = {"inactivity_days": "PRIVACY_HUB_INACTIVITY_DAYS",
                    "consent_proof_retention_days": "PRIVACY_HUB_CONSENT_PROOF_RETENTION_DAYS",
                    }.get(rule.setting, f"PRIVACY_HUB_{rule.setting.upper()}")
        assert getattr(Settings.from_env({variable: "42"}), rule.setting) == 42, variable
        for bad in ("0", "a year"):
            with pytest.raises(ConfigError, match=variable) as caught:
                Settings.from_env({variable: bad})
            assert "\n" not in str(caught.value)
    assert Settings.from_env({}).inactivity_days == 3 * 365


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


# -- what people read ----------------------------------------------------------------------
def test_the_api_lists_every_store_with_its_period_and_reason(
        client: FlaskClient, auth: dict[str, str], catalogue: None, hub: Hub) -> None:
    """R-RET-01 acceptance: `GET /retention-policies` lists every store with a period (or
    the recorded reason it has none), per purpose where the purpose sets it; the
    configuration changes what it says."""
    hub.settings = hub.settings.with_(retention_outbox_days=45)
    resp = client.get("/api/v1/retention-policies?limit=1000", headers=auth)
    assert resp.status_code == 200
    items = {i["id"]: i for i in resp.json["items"]}
    assert {r.store for r in RULES} == {i["store"] for i in items.values()}
    assert items["webhook_deliveries"]["days"] == 45
    assert items["webhook_deliveries"]["period"] == "P45D"
    assert items["webhook_deliveries"]["config_variable"] == "PRIVACY_HUB_RETENTION_OUTBOX_DAYS"
    assert items["customer_events:analytics.behaviour"]["days"] == ANALYTICS_DAYS
    assert items["customer_events:analytics.behaviour"]["purpose"] == "analytics.behaviour"
    assert items["legal_retention:invoicing"]["action"] == "crypto_shred"
    assert "legal_retention:marketing.email" not in items  # consent: no legal hold
    assert items["audit_log"]["days"] == 6 * 365
    assert items["customer_profiles"]["config_variable"] == "PRIVACY_HUB_INACTIVITY_DAYS"
    for item in items.values():
        assert item["reason"] and item["action"] in ACTIONS
        assert (item["days"] is None) == (item["action"] == KEEP)
    spec = client.get("/api/openapi.json").json
    assert "/api/v1/retention-policies" in spec["paths"]


def test_the_list_needs_audit_read(client: FlaskClient, hub: Hub) -> None:
    key = new_key(hub, "shop", ["consents:read"])
    resp = client.get("/api/v1/retention-policies", headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 403
    assert client.get("/api/v1/retention-policies").status_code == 401


def test_the_records_of_processing_quote_the_same_table(
        client: FlaskClient, auth: dict[str, str], catalogue: None, hub: Hub) -> None:
    """R-RET-01, Art. 30(1)(f): the ROPA's retention comes from the retention table."""
    hub.settings = hub.settings.with_(inactivity_days=800)
    ropa = client.get("/api/v1/ropa", headers=auth).json
    listed = client.get("/api/v1/retention-policies?limit=1000", headers=auth).json["items"]
    assert ropa["retention_policies"] == listed
    by_key = {a["purpose"]: a for a in ropa["activities"] if "purpose" in a}
    assert f"{ANALYTICS_DAYS} days after they occurred" in by_key["analytics.behaviour"][
        "retention"]
    assert "800 days without activity" in by_key["analytics.behaviour"]["retention"]
    assert f"{INVOICING_DAYS} days after the profile's erasure" in by_key["invoicing"][
        "retention"]


def test_the_cli_dry_run_prints_counts_and_deletes_nothing(
        hub: Hub, catalogue: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """R-RET-01: `privacy-hub retention run --dry-run` prints one line per store; `run`
    deletes; `retention policies` lists the table."""
    from click.testing import CliRunner

    from privacy_hub import cli, cli_retention

    _seed_all(hub, datetime.now(UTC) - timedelta(days=INVOICING_DAYS + 2))
    before = _counts(hub)
    monkeypatch.setattr(cli_retention, "_open_hub", lambda *a, **k: hub)
    monkeypatch.setattr(hub, "close", lambda: None)
    dry = CliRunner().invoke(cli.main, ["retention", "run", "--dry-run"],
                             catch_exceptions=False)
    assert dry.exit_code == 0, dry.output
    lines = dict(line.split(": ", 1) for line in dry.output.splitlines() if ": " in line)
    assert int(lines["customer_events"]) == 1 and int(lines["check_log"]) == 1
    assert "would delete" in dry.output
    assert _counts(hub) == before
    real = CliRunner().invoke(cli.main, ["retention", "run"], catch_exceptions=False)
    assert real.exit_code == 0 and "check_log: 1" in real.output
    assert all(n == 0 for n in _counts(hub).values())
    listed = CliRunner().invoke(cli.main, ["retention", "policies"], catch_exceptions=False)
    assert "audit_log\t2190 days\tdelete\tPRIVACY_HUB_RETENTION_AUDIT_DAYS" in listed.output
