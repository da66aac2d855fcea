"""Inactive customers (R-RET-02): warned by mail the notice period before, then erased
through the API's erasure unless they were active again or followed the mail's link;
on SQLite and PostgreSQL, with the pass's clock run forward (no sleeping).

A customer's last activity is set back in the database (as if their last purchase,
sign-in, consent or request lay that far back); everything else goes through the API,
the portal, the worker and the CLI."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import inspect, select, update

from audit.clock import utcnow
from audit.models import AuditEntry
from dsar.models import DataSubjectRequest
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from privacy_hub.jobs import mailbox
from privacy_hub.jobs.outbox import OutboxJob
from privacy_hub.jobs.worker import Worker
from privacy_hub.models import SignInLink
from privacy_hub.usecases import sign_in
from privacy_hub.usecases.inactivity import run_inactivity
from privacy_hub.vault.models import Customer, RetainedRecord
from tests.conftest import SEED_EMAIL, SEED_NAME

DAY = timedelta(days=1)


@pytest.fixture
def app(hub: Hub) -> Flask:
    from privacy_hub.app import create_app

    app = create_app(hub=hub)
    app.config["WTF_CSRF_ENABLED"] = True
    return app


def new_customer(client: FlaskClient, auth: dict[str, str], email: str, **fields: Any) -> str:
    resp = client.post("/api/v1/customers", headers=auth, json={"email": email, **fields})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return str(resp.json["id"])


def last_active(hub: Hub, cid: str, at: datetime) -> None:
    """The customer's last activity lay at ``at``."""
    with transaction(hub.sessions) as s:
        s.execute(update(Customer).where(Customer.id == cid).values(last_active_at=at))


def row(hub: Hub, cid: str) -> Customer:
    with hub.sessions() as s:
        found = s.get(Customer, cid)
        assert found is not None
        s.expunge(found)
        return found


def warn_day(hub: Hub, since: datetime) -> datetime:
    """When a customer last active at ``since`` is due for the warning."""
    s = hub.settings
    return since + timedelta(days=s.inactivity_days - s.inactivity_notice_days)


def mails(hub: Hub) -> list[mailbox.StoredMail]:
    Worker(hub).run_once()
    return mailbox.stored_mails(hub.settings.instance_path / "outbox")


def link_of(mail: mailbox.StoredMail) -> str:
    found = re.search(r"^https?://\S+/portal/keep\?token=\S+$", mailbox.plain_text(mail), re.M)
    assert found, mailbox.plain_text(mail)
    return found.group(0)


def audit_rows(hub: Hub) -> list[AuditEntry]:
    with hub.sessions() as s:
        return list(s.scalars(select(AuditEntry).order_by(AuditEntry.seq)))


def test_an_inactive_customer_is_warned_on_the_day_and_not_before(
        client: FlaskClient, auth: dict[str, str], hub: Hub) -> None:
    """R-RET-02: the warning goes out inactivity_days - notice_days after the last
    activity, once, by mail in the customer's language, naming the erasure date and
    the keep-my-account link and no other personal data."""
    assert (hub.settings.inactivity_days, hub.settings.inactivity_notice_days) == (3 * 365, 30)
    since = utcnow() - timedelta(days=400)
    de = new_customer(client, auth, SEED_EMAIL, first_name=SEED_NAME, locale="de-DE",
                      phone="+4915112345678")
    en = new_customer(client, auth, "recent@example.org", locale="en")
    last_active(hub, de, since)
    last_active(hub, en, since + 10 * DAY)
    day = warn_day(hub, since)

    assert run_inactivity(hub, day - timedelta(minutes=1)).warned == 0
    assert row(hub, de).inactivity_notice_at is None
    counts = run_inactivity(hub, day + timedelta(minutes=1))
    assert (counts.warned, counts.erased) == (1, 0)
    assert row(hub, de).inactivity_notice_at is not None
    assert row(hub, en).inactivity_notice_at is None
    assert run_inactivity(hub, day + 2 * DAY).warned == 0  # warned once
    assert run_inactivity(hub, day + 11 * DAY).warned == 1  # the other one, on its day

    stored = {m.to: m for m in mails(hub)}
    german = mailbox.plain_text(stored[SEED_EMAIL])
    erase_on = (day + timedelta(minutes=1) + 30 * DAY).date()
    months = ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August",
              "September", "Oktober", "November", "Dezember"]
    assert f"{erase_on.day}. {months[erase_on.month - 1]} {erase_on.year}" in german
    assert link_of(stored[SEED_EMAIL]).startswith("http://127.0.0.1:8000/portal/keep?token=")
    for personal in (SEED_NAME, "+4915112345678", "15112345678"):
        assert personal not in german
    assert "Content-Language: de" in stored[SEED_EMAIL].path.read_text()
    assert "Content-Language: en" in stored["recent@example.org"].path.read_text()


def test_the_warned_customer_is_erased_after_the_notice_keeping_legal_records(
        client: FlaskClient, auth: dict[str, str], hub: Hub, catalogue: None,
        caplog: pytest.LogCaptureFixture) -> None:
    """R-RET-02: 30 days after the warning, still inactive: erased by the API's erasure
    (an erasure request verified by ``inactivity``), the invoicing fields kept under the
    legal obligation; an erased customer is skipped after; the seeded email is nowhere
    in the audit log or the logs."""
    caplog.set_level(logging.DEBUG)
    since = utcnow() - timedelta(days=400)
    cid = new_customer(client, auth, SEED_EMAIL, first_name=SEED_NAME, last_name="Byron",
                       external_id="shop-42")
    other = new_customer(client, auth, "active@example.org")
    last_active(hub, cid, since)
    warned_at = warn_day(hub, since) + DAY
    assert run_inactivity(hub, warned_at).warned == 1

    assert run_inactivity(hub, warned_at + 30 * DAY - timedelta(minutes=1)).erased == 0
    assert client.get(f"/api/v1/customers/{cid}", headers=auth).json["status"] == "active"
    counts = run_inactivity(hub, warned_at + 30 * DAY)
    assert (counts.erased, counts.failed) == (1, 0)
    assert client.get(f"/api/v1/customers/{cid}", headers=auth).json["status"] == "erased"
    assert client.get(f"/api/v1/customers/{other}", headers=auth).json["status"] == "active"
    with hub.sessions() as s:
        kept = s.scalars(select(RetainedRecord).where(RetainedRecord.customer_id == cid)).all()
        assert [(r.purpose, r.legal_basis) for r in kept] == [("invoicing", "legal_obligation")]
        req = s.scalars(select(DataSubjectRequest)
                        .where(DataSubjectRequest.customer_id == cid)).one()
        assert (req.type, req.verification_method) == ("erasure", "inactivity")
    assert run_inactivity(hub, warned_at + 60 * DAY).erased == 0  # already erased: skipped

    entries = audit_rows(hub)
    passes = [json.loads(e.details) for e in entries if e.action == "retention.inactivity_pass"]
    assert {"warned": 0, "erased": 1, "failed": 0, "dry_run": False}.items() <= passes[-1].items()
    assert any(e.action == "customer.erased" and e.customer_id == cid for e in entries)
    for text in [e.details for e in entries] + [caplog.text]:
        assert SEED_EMAIL not in text and SEED_NAME not in text


def test_activity_between_warning_and_erasure_keeps_the_customer(
        client: FlaskClient, auth: dict[str, str], hub: Hub, catalogue: None) -> None:
    """R-RET-02: a portal sign-in, a purchase or a consent decision after the warning
    withdraws it: nobody is erased when the notice has run out."""
    since = utcnow() - timedelta(days=400)
    signs_in = new_customer(client, auth, SEED_EMAIL)
    buys = new_customer(client, auth, "buyer@example.org")
    decides = new_customer(client, auth, "decider@example.org")
    idle = new_customer(client, auth, "idle@example.org")
    for cid in (signs_in, buys, decides, idle):
        last_active(hub, cid, since)
    warned_at = warn_day(hub, since) + DAY
    assert run_inactivity(hub, warned_at).warned == 4

    with transaction(hub.sessions) as s:  # a sign-in link as the portal mails it, used
        s.add(SignInLink(token_hash=sign_in._digest("tok-" + "x" * 40), customer_id=signs_in,
                         created_at=utcnow(), expires_at=utcnow() + timedelta(minutes=5)))
    with transaction(hub.sessions) as s:
        assert sign_in.redeem(s, "tok-" + "x" * 40) == signs_in
    resp = client.post("/api/v1/events", headers=auth, json={"events": [{
        "customer_id": buys, "type": "purchase", "purpose": "orders.fulfilment",
        "occurred_at": utcnow().isoformat(), "properties": {"total": 12}}]})
    assert resp.status_code == 200 and resp.json["accepted"] == 1, resp.json
    resp = client.post(f"/api/v1/customers/{decides}/consents", headers=auth,
                       json={"purpose": "analytics.behaviour", "granted": True})
    assert resp.status_code == 201, resp.json
    for cid in (signs_in, buys, decides):
        assert row(hub, cid).inactivity_notice_at is None
        assert row(hub, cid).last_active_at > since + DAY  # type: ignore[operator]

    counts = run_inactivity(hub, warned_at + 30 * DAY)
    assert counts.erased == 1
    statuses = {cid: client.get(f"/api/v1/customers/{cid}", headers=auth).json["status"]
                for cid in (signs_in, buys, decides, idle)}
    assert statuses == {signs_in: "active", buys: "active", decides: "active", idle: "erased"}


def test_the_keep_link_keeps_the_account_and_works_once(
        client: FlaskClient, auth: dict[str, str], hub: Hub) -> None:
    """R-RET-02: the mail's link shows a button; pressing it keeps the account (audited
    as the customer's act); the same link then is refused, and the erasure never comes."""
    since = utcnow() - timedelta(days=400)
    cid = new_customer(client, auth, SEED_EMAIL)
    last_active(hub, cid, since)
    warned_at = warn_day(hub, since) + DAY
    run_inactivity(hub, warned_at)
    (mail,) = mails(hub)
    path = link_of(mail).removeprefix("http://127.0.0.1:8000")

    page = client.get(path)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Keep my account" in html and SEED_EMAIL not in html
    token = path.split("token=", 1)[1]
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert csrf
    assert client.post("/portal/keep", data={"token": token}).status_code == 400  # no CSRF
    kept = client.post("/portal/keep", data={"token": token, "csrf_token": csrf.group(1)})
    assert kept.status_code == 200 and "Your account stays" in kept.get_data(as_text=True)
    assert row(hub, cid).inactivity_notice_at is None
    again = client.post("/portal/keep", data={"token": token, "csrf_token": csrf.group(1)})
    assert again.status_code == 410
    assert client.get(path).status_code == 410
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert client.get(f"/portal/keep?token={forged}").status_code == 410

    assert run_inactivity(hub, warned_at + 30 * DAY).erased == 0
    assert client.get(f"/api/v1/customers/{cid}", headers=auth).json["status"] == "active"
    entries = audit_rows(hub)
    (cancelled,) = [e for e in entries if e.action == "customer.inactivity_erasure_cancelled"]
    assert (cancelled.actor_type, cancelled.customer_id) == ("customer", cid)


def test_a_customer_without_an_email_is_erased_without_a_mail_when_the_period_ends(
        client: FlaskClient, auth: dict[str, str], hub: Hub) -> None:
    """R-RET-02: nobody can be warned, so no mail; erased once the full period passed."""
    since = utcnow() - timedelta(days=400)
    cid = new_customer(client, auth, "gone@example.org")
    last_active(hub, cid, since)
    with transaction(hub.sessions) as s:
        s.execute(update(Customer).where(Customer.id == cid)
                  .values(email_ct=None, email_bidx=None))
    end = since + timedelta(days=hub.settings.inactivity_days)
    assert run_inactivity(hub, end - DAY).as_dict() == {
        "warned": 0, "erased": 0, "failed": 0, "dry_run": False}
    assert run_inactivity(hub, end + DAY).erased == 1
    with hub.sessions() as s:
        kinds = s.scalars(select(OutboxJob.kind).where(OutboxJob.customer_id == cid)).all()
    assert "mail" not in kinds
    assert client.get(f"/api/v1/customers/{cid}", headers=auth).json["status"] == "erased"


def test_a_dry_run_counts_and_changes_nothing_and_the_worker_runs_the_pass(
        client: FlaskClient, auth: dict[str, str], hub: Hub) -> None:
    """R-RET-02: `--dry-run` only counts; the workers' housekeeping runs the pass."""
    since = utcnow() - timedelta(days=400)
    cid = new_customer(client, auth, SEED_EMAIL)
    last_active(hub, cid, since)
    when = warn_day(hub, since) + DAY
    before = len(audit_rows(hub))
    assert run_inactivity(hub, when, dry_run=True).as_dict() == {
        "warned": 1, "erased": 0, "failed": 0, "dry_run": True}
    assert row(hub, cid).inactivity_notice_at is None and len(audit_rows(hub)) == before
    Worker(hub, clock=lambda: when).housekeeping()
    assert row(hub, cid).inactivity_notice_at is not None


def test_the_cli_runs_the_pass_with_a_dry_run(tmp_path: Path) -> None:
    """R-RET-02: `privacy-hub retention inactive [--dry-run]` prints the counts."""
    from privacy_hub.cli import main

    env = {"PRIVACY_HUB_INSTANCE_PATH": str(tmp_path / "cli-instance")}
    runner = CliRunner()
    assert runner.invoke(main, ["init"], env=env, catch_exceptions=False).exit_code == 0
    dry = runner.invoke(main, ["retention", "inactive", "--dry-run"], env=env,
                        catch_exceptions=False)
    assert dry.exit_code == 0 and dry.output.strip() == "would warn 0, would erase 0"
    real = runner.invoke(main, ["retention", "inactive"], env=env, catch_exceptions=False)
    assert real.exit_code == 0 and real.output.strip() == "warned 0, erased 0, failed 0"
    bad = runner.invoke(main, ["retention", "inactive"], env={
        **env, "PRIVACY_HUB_INACTIVITY_NOTICE_DAYS": "5000"})
    assert bad.exit_code != 0 and "PRIVACY_HUB_INACTIVITY_NOTICE_DAYS" in bad.output


def test_the_migration_backfills_last_activity_from_the_last_change(
        tmp_path: Path, db_url: str) -> None:
    """R-RET-02: customers made before the column count from their last change; the
    models and the migrations agree."""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import bindparam, text
    from sqlalchemy.orm import Session

    from audit.sql import UTCDateTime
    from privacy_hub import migrations
    from privacy_hub.db import make_engine
    from tests.hubs import make_settings, migrate

    migrate(make_settings(tmp_path, db_url))
    engine = make_engine(db_url)
    changed = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    insert = text("INSERT INTO customers (id, status, key_version, created_at, updated_at) "
                  "VALUES ('c-1', 'active', 1, :t, :u)").bindparams(
        bindparam("t", type_=UTCDateTime()), bindparam("u", type_=UTCDateTime()))
    try:
        with engine.begin() as conn:
            config = migrations.alembic_config(conn, "main")
            before = ScriptDirectory.from_config(config).get_revision("0026").down_revision
            command.downgrade(config, str(before))
            assert "last_active_at" not in {c["name"] for c in inspect(conn).get_columns(
                "customers")}
            conn.execute(insert, {"t": changed - 300 * DAY, "u": changed})
            command.upgrade(config, "main@head")
        with Session(engine) as s:
            found = s.get(Customer, "c-1")
            assert found is not None and found.last_active_at == changed
            assert found.inactivity_notice_at is None
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(ctx, migrations.main_metadata()
                                    + migrations.keystore_metadata()) == []
    finally:
        engine.dispose()
