"""`privacy-hub import`: bulk-loading a CRM export into the vault, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, inspect, select, text

import audit
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from privacy_hub.importer import ImportFileError, ImportReport, import_csv, loading
from privacy_hub.vault import bulk
from privacy_hub.vault.keystore import CustomerKey
from privacy_hub.vault.models import Customer
from tests.conftest import SEED_EMAIL, SEED_NAME, SEED_PHONE
from tests.hubs import make_hub

TESTER = audit.Actor("staff", "staff-1")
HEADER = ["external_id", "email", "phone", "first_name", "last_name", "birth_date", "locale",
          "address_line1", "address_postal_code", "address_city", "address_country",
          "attr.tier"]


@pytest.fixture
def hub(tmp_path: Path, db_url: str) -> Iterator[Hub]:
    hub = make_hub(tmp_path, db_url)
    yield hub
    hub.close()


@pytest.fixture
def sqlite_hub(tmp_path: Path) -> Iterator[Hub]:
    """For checks of the file alone, which never reach the database."""
    hub = make_hub(tmp_path, f"sqlite:///{tmp_path / 'hub.db'}")
    yield hub
    hub.close()


def write_csv(path: Path, rows: list[list[str]], *, header: list[str] = HEADER,
              encoding: str = "utf-8") -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def row(external_id: str = "", email: str = "", phone: str = "", first_name: str = "",
        last_name: str = "", birth_date: str = "", locale: str = "", line1: str = "",
        postal_code: str = "", city: str = "", country: str = "", tier: str = "") -> list[str]:
    return [external_id, email, phone, first_name, last_name, birth_date, locale, line1,
            postal_code, city, country, tier]


def lookup(hub: Hub, **identifier: str) -> list[str]:
    with transaction(hub.sessions) as session:
        return hub.vault.lookup(session, actor=TESTER, **identifier)


def read(hub: Hub, customer_id: str) -> dict[str, Any]:
    with transaction(hub.sessions) as session:
        return hub.vault.read(session, customer_id, actor=TESTER)


def counts(hub: Hub) -> tuple[int, int]:
    with hub.sessions() as session:
        return (session.scalar(select(func.count()).select_from(Customer)) or 0,
                session.scalar(select(func.count()).select_from(CustomerKey)) or 0)


def report_text(report: ImportReport) -> str:
    return repr(report) + "\n".join(f"line {n}: " + "; ".join(m) for n, m in report.rejected)


def test_good_rows_load_and_are_readable_and_findable(hub: Hub, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "crm.csv", [
        row("CRM-1", " Ada.Lovelace+Seed@Example.org ", SEED_PHONE, "Ada", SEED_NAME,
            "1915-12-10", "en-GB", "12 St James's Square", "SW1Y 4JH", "London", "GB", "gold"),
        row("CRM-2", "grace@example.com", "0151 12345679", "Grace", "Hopper", country="DE"),
        row(email="alan@example.com"),
    ])
    assert import_csv(hub, path) == ImportReport(created=3, updated=0, rejected=[])

    (ada,) = lookup(hub, email=SEED_EMAIL)
    assert lookup(hub, external_id="CRM-1") == [ada]
    assert lookup(hub, phone=SEED_PHONE) == [ada]
    assert read(hub, ada) | {"created_at": None, "updated_at": None} == {
        "id": ada, "status": "active", "created_at": None, "updated_at": None,
        "external_id": "CRM-1", "email": SEED_EMAIL, "phone": SEED_PHONE,
        "first_name": "Ada", "last_name": SEED_NAME, "birth_date": "1915-12-10",
        "locale": "en-GB", "attributes": {"tier": "gold"},
        "address": {"line1": "12 St James's Square", "postal_code": "SW1Y 4JH",
                    "city": "London", "country": "GB"},
    }
    (grace,) = lookup(hub, external_id="CRM-2")
    assert read(hub, grace)["phone"] == "+4915112345679"  # a national number, country DE
    (alan,) = lookup(hub, email="alan@example.com")
    assert read(hub, alan)["address"] is None  # empty cells are absent fields
    assert counts(hub) == (3, 3)


@pytest.mark.parametrize("parallel", [False, True], ids=["in_process", "worker"])
def test_bad_rows_are_reported_by_line_and_do_not_stop_the_others(
        hub: Hub, tmp_path: Path, parallel: bool) -> None:
    path = write_csv(tmp_path / "crm.csv", [
        row("CRM-1", "one@example.com"),                                          # line 2
        row("CRM-2", "ada.lovelace+seed@@example.org"),                           # line 3
        row("CRM-3", "three@example.com", birth_date="10.12.1915", country="Germany"),
        row("CRM-4", "four@example.com", phone="+1 12"),                          # line 5
        row("CRM-5", "five@example.com", line1="Flat 2\nOld Rectory", city="Bath"),  # 6-7
        row("CRM-6", "", first_name="Nobody"),                                    # line 8
        row("CRM-7", "seven@example.com", locale="English", tier="x" * 20),       # line 9
        ["CRM-8", "eight@example.com"],                                           # line 10
    ])
    progress: list[int] = []
    report = import_csv(hub, path, batch_size=3, progress=progress.append, parallel=parallel)

    assert report.created == 2 and report.updated == 0
    assert report.rejected == [
        (3, ["email: not a valid email address"]),
        (4, ["birth_date: Not a valid date.",
             "address_country: must be an ISO 3166-1 alpha-2 country code in capitals, e.g. DE"]),
        (5, ["phone: not a possible phone number for its country"]),
        (8, ["email: required for a new customer (no customer has this external_id)"]),
        (9, ["locale: must be a language tag, e.g. en or de-DE"]),
        (10, ["has 2 cells, the header has 12"]),
    ]
    assert progress == [3, 6, 8]  # rows read, after each batch
    (five,) = lookup(hub, external_id="CRM-5")
    assert read(hub, five)["address"]["line1"] == "Flat 2\nOld Rectory"
    assert [lookup(hub, external_id=f"CRM-{n}") for n in (2, 3, 4, 6, 7, 8)] == [[]] * 6


def test_a_repeated_email_or_external_id_rejects_the_later_row(hub: Hub, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "crm.csv", [
        row("CRM-1", "one@example.com", first_name="First"),
        row("CRM-2", "ONE@example.com ", first_name="Second"),  # the same after normalising
        row("CRM-1", "other@example.com"),
        row("CRM-3", "bad email"),  # rejected rows claim nothing
        row("CRM-3", "three@example.com"),
    ])
    report = import_csv(hub, path, batch_size=2)

    assert report.rejected == [(3, ["email: same as line 2"]),
                               (4, ["external_id: same as line 2"]),
                               (5, ["email: not a valid email address"])]
    assert report.created == 2
    (one,) = lookup(hub, email="one@example.com")
    assert read(hub, one)["first_name"] == "First"


def test_importing_again_updates_instead_of_duplicating(hub: Hub, tmp_path: Path) -> None:
    first = write_csv(tmp_path / "first.csv", [
        row("CRM-1", "one@example.com", first_name="Ann"),
        row("", "two@example.com", first_name="Bob"),
        row("CRM-3", "three@example.com", first_name="Cy"),
    ])
    assert import_csv(hub, first) == ImportReport(created=3, updated=0, rejected=[])

    second = write_csv(tmp_path / "second.csv", [
        row("CRM-1", "new-one@example.com", first_name="Anne"),  # matched by external_id
        row("CRM-2", "two@example.com", last_name="Builder"),    # by email; gains an id
        row("CRM-9", "three@example.com"),   # that email is another shop account's
        row("CRM-3", "", last_name="Smith"),  # no email needed to update
        row("CRM-4", "four@example.com"),
    ])
    report = import_csv(hub, second)

    assert report == ImportReport(created=1, updated=3, rejected=[
        (4, ["email: another customer already has this email"])])
    assert counts(hub) == (4, 4)
    (one,) = lookup(hub, external_id="CRM-1")
    assert lookup(hub, email="one@example.com") == []
    assert (read(hub, one)["email"], read(hub, one)["first_name"]) == ("new-one@example.com", "Anne")
    (two,) = lookup(hub, email="two@example.com")
    assert lookup(hub, external_id="CRM-2") == [two]
    profile = read(hub, two)
    assert (profile["first_name"], profile["last_name"]) == ("Bob", "Builder")  # absent: kept
    (three,) = lookup(hub, external_id="CRM-3")
    assert read(hub, three)["last_name"] == "Smith"


def test_personal_data_never_reaches_the_report_or_the_database_in_clear(
        hub: Hub, tmp_path: Path, db_url: str) -> None:
    path = write_csv(tmp_path / "crm.csv", [
        row("CRM-1", SEED_EMAIL, SEED_PHONE, last_name=SEED_NAME, city="London"),
        row("CRM-2", SEED_EMAIL.replace("@", "@@"), last_name=SEED_NAME),  # rejected
        row("CRM-3", "x@example.com", phone=SEED_EMAIL, birth_date=SEED_EMAIL,
            locale=SEED_EMAIL, country=SEED_EMAIL, tier=SEED_EMAIL),  # rejected
        row("CRM-4", SEED_EMAIL.upper()),  # rejected as a repeat
    ])
    report = import_csv(hub, path)
    assert report.created == 1 and [n for n, _ in report.rejected] == [3, 4, 5]

    shown = report_text(report).lower()
    for secret in (SEED_EMAIL, SEED_NAME, "lovelace"):  # SEED_PHONE is our example number
        assert secret.lower() not in shown
    stored = dump_database(hub, db_url, tmp_path)
    for secret in (SEED_EMAIL, SEED_NAME, SEED_PHONE, "London"):
        assert secret.encode() not in stored
        assert secret.lower().encode() not in stored.lower()


def dump_database(hub: Hub, db_url: str, tmp_path: Path) -> bytes:
    """Every byte the database holds: the SQLite files, or each PostgreSQL row as text."""
    if db_url.startswith("sqlite"):
        return b"".join(p.read_bytes() for p in sorted(tmp_path.glob("hub.db*")))
    out = []
    with hub.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            # Table names come from the database's own catalogue, not from input.
            rows = conn.execute(text(f'SELECT t::text FROM "{table}" t'))  # noqa: S608
            out += [str(r[0]).encode() for r in rows]
    assert out
    return b"\n".join(out)


@pytest.mark.parametrize(("header", "message"), [
    ([*HEADER[:2], "emial"], "unknown column 'emial' (column 3)"),
    (["external_id", "first_name"], "the file has no email column"),
    (["email", "email"], "column 'email' appears more than once"),
    (["email", "attr."], "unknown column 'attr.'"),
    ([SEED_EMAIL, "Ada"], "the first line holds an email address, not column names"),
    ([], "the file is empty"),
])
def test_an_unusable_header_fails_the_import_before_loading_anything(
        sqlite_hub: Hub, tmp_path: Path, header: list[str], message: str) -> None:
    path = write_csv(tmp_path / "crm.csv", [["a@example.com", "b", "c"]], header=header)
    if not header:
        path.write_bytes(b"")
    with pytest.raises(ImportFileError) as failed:
        import_csv(sqlite_hub, path)
    assert message in failed.value.message
    assert SEED_EMAIL not in failed.value.message
    assert counts(sqlite_hub) == (0, 0)


def test_a_bom_and_lines_that_are_not_utf8(sqlite_hub: Hub, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "crm.csv", [["one@example.com", "Zoë"]],
                     header=["email", "first_name"], encoding="utf-8-sig")
    path.write_bytes(path.read_bytes() + "two@example.com,Jörg\n".encode("latin-1")
                     + b"\n,\nthree@example.com,\n")  # blank and empty records are skipped
    report = import_csv(sqlite_hub, path)
    assert report == ImportReport(created=2, updated=0, rejected=[
        (3, ["first_name: not valid UTF-8 (save the file as UTF-8)"])])
    (one,) = lookup(sqlite_hub, email="one@example.com")
    assert read(sqlite_hub, one)["first_name"] == "Zoë"


def test_the_import_is_audited_and_the_chain_verifies(hub: Hub, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "crm.csv", [row(f"CRM-{n}", f"c{n}@example.com",
                                                first_name="Ann") for n in range(30)])
    import_csv(hub, path, batch_size=7)
    import_csv(hub, write_csv(tmp_path / "again.csv", [row("CRM-1", last_name="Lee")]))

    with hub.sessions() as session:
        assert audit.verify_chain(session, hub.audit_public_keys()).ok
        created = audit.entries(session, action="customer.created", limit=100)
        updated = audit.entries(session, action="customer.updated", limit=100)
    assert len(created) == 30 and len(updated) == 1
    assert {e.actor_type + ":" + str(e.actor_id) for e in created + updated} == {"cli:import"}
    assert audit.public_entry(created[0])["details"] == {
        "fields": ["email", "external_id", "first_name"], "source": "import"}


def test_a_failing_batch_loses_only_itself_and_never_leaves_a_customer_without_a_key(
        hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_csv(tmp_path / "crm.csv", [row(f"CRM-{n}", f"c{n}@example.com")
                                            for n in range(10)])
    real = bulk.insert_customers
    calls: list[int] = []

    def crash_in_the_second_batch(*args: Any, **kwargs: Any) -> list[str]:
        ids = real(*args, **kwargs)  # the customers are inserted, not yet committed
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("power cut")
        return ids

    monkeypatch.setattr(loading, "insert_customers", crash_in_the_second_batch)
    with pytest.raises(RuntimeError, match="power cut"):
        import_csv(hub, path, batch_size=4)
    assert counts(hub) == (4, 4)
    with hub.sessions() as session:
        keyless = session.scalar(select(func.count()).select_from(Customer).where(
            ~Customer.id.in_(select(CustomerKey.customer_id))))
    assert keyless == 0


def test_a_separate_key_store_gets_its_keys_first(tmp_path: Path) -> None:
    hub = make_hub(tmp_path, f"sqlite:///{tmp_path / 'hub.db'}",
                   keystore_url=f"sqlite:///{tmp_path / 'keys.db'}")
    try:
        import_csv(hub, write_csv(tmp_path / "one.csv", [row("CRM-1", "one@example.com")]))
        report = import_csv(hub, write_csv(tmp_path / "two.csv", [
            row("CRM-1", "one@example.com", first_name="Ann"), row("CRM-2", "two@example.com")]))
        assert report == ImportReport(created=1, updated=1, rejected=[])
        assert counts(hub) == (2, 2)  # the key made for the updated row was dropped
        (two,) = lookup(hub, email="two@example.com")
        assert read(hub, two)["external_id"] == "CRM-2"
    finally:
        hub.close()


def test_cli_import_prints_rejections_and_a_summary(hub: Hub, tmp_path: Path,
                                                    db_url: str) -> None:
    path = write_csv(tmp_path / "crm.csv", [row("CRM-1", "one@example.com"),
                                            row("CRM-2", SEED_EMAIL + ".")])
    env = {"PRIVACY_HUB_INSTANCE_PATH": str(hub.settings.instance_path),
           "PRIVACY_HUB_DATABASE_URL": db_url,
           "PRIVACY_HUB_SECRET_KEY": secrets.token_urlsafe(48),
           "PRIVACY_HUB_ROOT_KEY_FILE": str(hub.settings.root_key_path)}
    from privacy_hub.cli import main

    result = CliRunner().invoke(main, ["import", str(path), "--batch-size", "1"], env=env)
    assert result.exit_code == 0, result.output
    assert "line 3: email: not a valid email address" in result.stderr
    # Not a terminal: plain progress lines on stderr (the first, and the last when done).
    assert "import: 1/2 rows" in result.stderr
    assert re.search(r"^import: 2 rows in \d+:\d\d:\d\d", result.stderr, re.M)
    assert "━" not in result.stderr  # no bar drawn into a pipe
    assert result.stdout.strip().endswith("imported 1 new, updated 0, rejected 1 rows")
    assert SEED_EMAIL not in result.output
    assert lookup(hub, external_id="CRM-1")

    bad = write_csv(tmp_path / "bad.csv", [["x"]], header=["e-mail"])
    failed = CliRunner().invoke(main, ["import", str(bad)], env=env)
    assert failed.exit_code == 1
    assert "Error: unknown column 'e-mail' (column 1)" in failed.output


@pytest.mark.parametrize("parallel", [False, True], ids=["in_process", "worker"])
def test_a_key_rotation_during_an_import_leaves_every_customer_readable(
        hub: Hub, tmp_path: Path, parallel: bool) -> None:
    path = write_csv(tmp_path / "crm.csv", [row(f"CRM-{n}", f"c{n}@example.com")
                                            for n in range(9)])

    def rotate_after_the_first_batch(read: int) -> None:
        if read == 3:
            hub.keyring.rotate(hub.sessions)

    report = import_csv(hub, path, batch_size=3, parallel=parallel,
                        progress=rotate_after_the_first_batch)

    assert report == ImportReport(created=9, updated=0, rejected=[])
    with transaction(hub.sessions) as session:
        states = [k["state"] for k in hub.keyring.kek_status(session)]
    assert states == ["retired", "primary"]  # batches sealed under version 1 were redone
    for n in range(9):
        (customer,) = lookup(hub, external_id=f"CRM-{n}")
        assert read(hub, customer)["email"] == f"c{n}@example.com"
    assert counts(hub) == (9, 9)
