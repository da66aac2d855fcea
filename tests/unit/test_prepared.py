"""Statements compiled once per dialect (audit/prepared.py): what goes to the driver is
what SQLAlchemy's own execution path would send. No database: only the dialects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table, insert, text
from sqlalchemy.dialects import postgresql, sqlite

from audit.prepared import Prepared, bind_processor, time_binder, time_reader
from audit.sql import UTCDateTime

SQLITE = sqlite.dialect()
POSTGRESQL = postgresql.psycopg.dialect()  # type: ignore[attr-defined]

_TABLE = Table("t", MetaData(), Column("id", String(36), primary_key=True),
               Column("blob", LargeBinary), Column("at", UTCDateTime()),
               Column("n", Integer, default=0))


def _sqlalchemy_sqlite_text(value: datetime) -> object:
    impl = UTCDateTime()
    stored = impl.process_bind_param(value, SQLITE)
    processor = impl.impl_instance.dialect_impl(SQLITE).bind_processor(SQLITE)
    assert processor is not None
    return processor(stored)


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30),
                    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                                               timezone(timedelta(hours=-8))])))
def test_a_sqlite_timestamp_is_stored_as_sqlalchemy_stores_it(value: datetime) -> None:
    processor = bind_processor(UTCDateTime(), SQLITE)
    assert processor is not None
    assert processor(value) == _sqlalchemy_sqlite_text(value)
    assert time_binder(SQLITE)(value) == processor(value)
    assert time_reader(SQLITE)(processor(value)) == value


def test_a_naive_timestamp_is_refused_on_every_dialect() -> None:
    for dialect in (SQLITE, POSTGRESQL):
        with pytest.raises(ValueError, match="naive"):
            time_binder(dialect)(datetime(2025, 1, 1))


def test_bytes_go_to_the_driver_as_they_are() -> None:
    assert bind_processor(LargeBinary(), SQLITE) is None
    assert bind_processor(LargeBinary(), POSTGRESQL) is None


def test_a_plan_fills_defaults_converts_and_orders_the_parameters() -> None:
    at = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    plan = Prepared(insert(_TABLE)).plan(SQLITE)
    assert plan.names == ("id", "blob", "at", "n")
    assert plan.params({"id": "a", "blob": b"\x00", "at": at}) == (
        "a", b"\x00", "2025-03-01 09:30:00.000000", None)
    named = Prepared(insert(_TABLE)).plan(POSTGRESQL)
    assert named.names is None
    assert named.params({"id": "a", "blob": b"\x00", "at": at, "n": 3}) == {
        "id": "a", "blob": b"\x00", "at": at, "n": 3}


def test_a_statement_can_differ_per_dialect() -> None:
    stmt = Prepared(lambda dialect: text(f"SELECT :x -- {dialect.name}"))
    assert stmt.plan(SQLITE).sql == "SELECT ? -- sqlite"
    assert stmt.plan(POSTGRESQL).sql == "SELECT %(x)s -- postgresql"
    assert stmt.plan(SQLITE) is stmt.plan(SQLITE)  # compiled once


def test_rows_convert_a_value_shared_by_a_batch_once() -> None:
    at = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    calls: list[datetime] = []
    plan = Prepared(insert(_TABLE)).plan(SQLITE)
    plan.processors["at"] = lambda value: calls.append(value) or str(value)
    rows = [{"id": str(i), "blob": None, "at": at} for i in range(3)]
    assert plan.rows(rows, ["id", "at", "n"], {"n": 1}) == [
        (str(i), str(at), 1) for i in range(3)]
    assert calls == [at]
