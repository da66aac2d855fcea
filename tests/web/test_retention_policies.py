"""The retention table (R-RET-01, Art. 5(1)(e), 30(1)(f)): it names every table with a
period (or the recorded reason for none), every period is set by configuration, and the
API, the records of processing and the CLI show the same table. The pass itself:
tests/web/test_retention.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient

from privacy_hub.config import ConfigError, Settings
from privacy_hub.hub import Hub
from privacy_hub.migrations import keystore_metadata, main_metadata
from privacy_hub.retention.policies import ACTIONS, KEEP, RULES, tables_named
from tests.web.conftest import new_key
from tests.web.test_retention import ANALYTICS_DAYS, INVOICING_DAYS, _counts, _seed_all


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
    assert int(Settings.retention_audit_days) == longest  # kept longest
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
        hub: Hub, catalogue: None, monkeypatch: pytest.MonkeyPatch) -> None:
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
