"""The import's fast paths store and decide exactly what the vault's own paths would.

- Rows are validated field by field, each repeating value once (importer.checking.RowChecker._load):
  the result must be CustomerCreateSchema's, for any body.
- New customers and keys are written by privacy_hub.vault.bulk (COPY on PostgreSQL,
  plain tuples on SQLite): the stored values must be those of Vault.upsert.
- Existing identifiers are first screened by blind index (importer.loading.BatchLoader._existing):
  customers created by the import and changed since must still be found.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import marshmallow as ma
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

import audit
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from privacy_hub.importer import ImportReport, import_csv
from privacy_hub.importer.checking import SCHEMA_VALIDATED, UNIQUE_FIELDS, RowChecker
from privacy_hub.importer.reading import parse_header
from privacy_hub.schemas import CustomerCreateSchema
from tests.hubs import make_hub
from tests.integration.test_import import HEADER, lookup, read, row, write_csv

TESTER = audit.Actor("staff", "staff-1")
CUSTOMER_COLUMNS = ("id", "status", "key_version", "created_at", "updated_at", "erased_at",
                    "external_id_bidx", "email_bidx", "phone_bidx", "external_id_ct",
                    "email_ct", "phone_ct", "first_name_ct", "last_name_ct", "birth_date_ct",
                    "locale_ct", "address_ct", "attributes_ct")
KEY_COLUMNS = ("customer_id", "key_class", "dek_version", "kek_version", "wrapped",
               "created_at")


@pytest.fixture
def hub(tmp_path: Path, db_url: str) -> Iterator[Hub]:
    hub = make_hub(tmp_path, db_url)
    yield hub
    hub.close()


@pytest.fixture(scope="module")
def checker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RowChecker]:
    path = tmp_path_factory.mktemp("checker")
    hub = make_hub(path, f"sqlite:///{path / 'hub.db'}")
    try:
        yield RowChecker(parse_header(HEADER), hub.vault, hub.keyring, 1)
    finally:
        hub.close()


# -- validating field by field ---------------------------------------------------------
def test_the_schema_validates_each_field_on_its_own() -> None:
    """What RowChecker._load relies on: no schema-level validator or hook, ``@validates``
    only for SCHEMA_VALIDATED, never for the identifiers, and fields loaded under their
    own names."""
    schema = CustomerCreateSchema()
    # marshmallow leaves empty entries in _hooks for hook kinds it has looked up once
    hooks = {kind: found for kind, found in schema._hooks.items() if found}
    assert set(hooks) <= {"validates"}, hooks
    validated = {name for _, _, kw in hooks.get("validates", []) for name in kw["field_names"]}
    assert validated <= set(SCHEMA_VALIDATED)
    assert not validated & set(UNIQUE_FIELDS)
    for name, fld in schema.fields.items():
        assert fld.data_key in (None, name) and fld.attribute in (None, name)


def _cell(good: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(good), st.text(max_size=12))


BODIES = st.fixed_dictionaries({}, optional={
    "external_id": _cell(["CRM-1", "x" * 128, "x" * 129]),
    "email": _cell(["a@example.com", "bad@@example.com", "A@Example.ORG "]),
    "phone": _cell(["+4915112345678", "12", "0151 1234567"]),
    "first_name": _cell(["Ada", "x" * 200, "x" * 201]),
    "last_name": _cell(["Lovelace"]),
    "birth_date": _cell(["1915-12-10", "1899-12-31", "2999-01-01", "10.12.1915"]),
    "locale": _cell(["en", "de-DE", "English"]),
    "address": st.fixed_dictionaries({}, optional={
        "line1": _cell(["1 Main St"]), "postal_code": _cell(["12345", "x" * 21]),
        "city": _cell(["Berlin"]), "country": _cell(["DE", "Germany", "de"])}),
    "attributes": st.dictionaries(_cell(["tier", "x" * 65]), _cell(["gold"]), max_size=2)
    | st.just({"big": "x" * (17 * 1024)}),
})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies=st.lists(BODIES, min_size=1, max_size=4))
def test_field_by_field_loads_what_the_schema_loads(checker: RowChecker,
                                                    bodies: list[dict[str, Any]]) -> None:
    schema = CustomerCreateSchema()
    for body in bodies:  # several in a row: what one body leaves in the memo is reused
        try:
            expected: Any = schema.load(body)
        except ma.ValidationError as exc:
            expected = exc.messages
        try:
            got: Any = checker._load(body)
        except ma.ValidationError as exc:
            got = exc.messages
        assert got == expected


# -- stored as the vault stores them ---------------------------------------------------
def _raw(hub: Hub, table: str, columns: tuple[str, ...], where: str, value: str) -> list[Any]:
    """A row as the driver returns it (no SQLAlchemy type processing), and the type
    the database holds each value as."""
    dialect = hub.engine.dialect.name
    kinds = ", ".join(f"typeof({c})" if dialect == "sqlite" else f"pg_typeof({c})::text"
                      for c in columns)
    # Table and column names are this test's constants, not input.
    stmt = f"SELECT {', '.join(columns)}, {kinds} FROM {table} WHERE {where} = :v"  # noqa: S608
    with hub.engine.connect() as conn:
        return list(conn.execute(text(stmt), {"v": value}).one())


def test_imported_customers_are_stored_and_read_as_the_vault_stores_them(
        hub: Hub, tmp_path: Path) -> None:
    fields = dict(external_id="CRM-1", email="ann@example.com", phone="+4915112345678",
                  first_name="Ann", last_name="Lee", birth_date="1980-02-29", locale="de-DE",
                  line1="1 Main St", postal_code="10115", city="Berlin", country="DE",
                  tier="gold")
    path = write_csv(tmp_path / "crm.csv", [row(**fields)])
    assert import_csv(hub, path) == ImportReport(created=1, updated=0, rejected=[])
    (imported,) = lookup(hub, email="ann@example.com")
    with transaction(hub.sessions) as session:
        made, created = hub.vault.upsert(session, {
            "external_id": "CRM-2", "email": "bob@example.com", "phone": "+4915112345679",
            "first_name": "Ann", "last_name": "Lee", "birth_date": date(1980, 2, 29),
            "locale": "de-DE", "attributes": {"tier": "gold"},
            "address": {"line1": "1 Main St", "postal_code": "10115", "city": "Berlin",
                        "country": "DE"}}, actor=TESTER)
    assert created

    def shape(values: list[Any]) -> list[Any]:
        """Python type of each value, the database's type, and SQLite's text formats."""
        return [type(v).__name__ if not isinstance(v, str) or ":" not in v
                else len(v) for v in values]

    for table, columns, key in (("customers", CUSTOMER_COLUMNS, "id"),
                                ("keystore_customer_keys", KEY_COLUMNS, "customer_id")):
        ours, theirs = (_raw(hub, table, columns, key, cid) for cid in (imported, made["id"]))
        assert shape(ours) == shape(theirs), table
    a, b = _raw(hub, "customers", ("status", "key_version", "erased_at"), "id", imported), \
        _raw(hub, "customers", ("status", "key_version", "erased_at"), "id", made["id"])
    assert a == b

    profile, expected = read(hub, imported), read(hub, made["id"])
    assert profile["created_at"] == profile["updated_at"]
    for name in ("id", "created_at", "updated_at", "external_id", "email", "phone"):
        profile.pop(name), expected.pop(name)
    assert profile == expected
    with hub.sessions() as session:
        assert audit.verify_chain(session, hub.audit_public_keys()).ok
        (entry,) = [e for e in audit.entries(session, action="customer.created", limit=10)
                    if e.customer_id == imported]
    assert audit.public_entry(entry)["details"] == {
        "fields": ["address", "attributes", "birth_date", "email", "external_id",
                   "first_name", "last_name", "locale", "phone"], "source": "import"}


# -- existing identifiers --------------------------------------------------------------
@pytest.mark.parametrize("parallel", [False, True], ids=["in_process", "worker"])
def test_a_customer_changed_during_the_import_is_found_by_what_it_has_now(
        hub: Hub, tmp_path: Path, parallel: bool) -> None:
    rows = [row(f"CRM-{n}", f"c{n}@example.com") for n in range(4)]
    rows.append(row("CRM-9", "renamed@example.com", first_name="Later"))  # second batch
    path = write_csv(tmp_path / "crm.csv", rows)

    def rename_the_first(read_so_far: int) -> None:
        if read_so_far == 4:  # after the first batch is committed, before the second
            (first,) = lookup(hub, external_id="CRM-0")
            with transaction(hub.sessions) as session:
                hub.vault.rectify(session, first, {"email": "renamed@example.com"},
                                  actor=TESTER)

    report = import_csv(hub, path, batch_size=4, parallel=parallel,
                        progress=rename_the_first)

    # The later row's email is now CRM-0's, another shop account's: never merged.
    assert report == ImportReport(created=4, updated=0, rejected=[
        (6, ["email: another customer already has this email"])])
    (first,) = lookup(hub, email="renamed@example.com")
    assert read(hub, first)["external_id"] == "CRM-0"
    assert lookup(hub, external_id="CRM-9") == []


def test_customers_created_before_the_import_are_updated_by_email(hub: Hub,
                                                                  tmp_path: Path) -> None:
    with transaction(hub.sessions) as session:
        made, _ = hub.vault.upsert(session, {"email": "old@example.com"}, actor=TESTER)
    rows = [row(f"CRM-{n}", f"n{n}@example.com") for n in range(50)]
    rows.insert(25, row("CRM-OLD", "OLD@example.com", first_name="Found"))
    report = import_csv(hub, write_csv(tmp_path / "crm.csv", rows), batch_size=10)
    assert report == ImportReport(created=50, updated=1, rejected=[])
    assert read(hub, made["id"])["first_name"] == "Found"
