"""Statements compiled once per dialect and run straight on the driver's cursor.

For the hot paths (consent checks, the check log, group commits, bulk loads): SQLAlchemy's
execution path (events, cache key, parameter and result processing) costs several times
what the driver does for a one-row statement, and converts a bulk load's rows one value
at a time (bench/README.md). A ``Prepared`` statement, Core or text, is compiled once per
dialect into a ``Plan``: the SQL text, the bind names in the driver's positional order,
the statement's own values, and each bind's type conversion. Bytes go to the drivers as
they are (sqlite3 and psycopg take them natively). Results come back as the driver's
tuples: convert timestamps with ``time_reader``; other columns used this way (ids,
integers, bytes, text) need no conversion.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, NamedTuple, cast

from sqlalchemy import Connection, Dialect, LargeBinary, Table, exc, insert
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.types import TypeEngine

from audit.sql import UTCDateTime

Processor = Callable[[Any], Any]


class Plan(NamedTuple):
    """A statement compiled for one dialect."""

    sql: str
    #: the bind names in the driver's positional order; None for named parameters
    names: tuple[str, ...] | None
    #: the statement's own values (None for binds it leaves to the caller)
    defaults: dict[str, Any]
    #: the type conversion of each bind that has one
    processors: dict[str, Processor]

    def params(self, values: Mapping[str, Any]) -> Any:
        """The driver's parameters for ``values``: defaults filled in, converted, in order."""
        params = {**self.defaults, **values}
        for key, proc in self.processors.items():
            value = params.get(key)
            if value is not None:
                params[key] = proc(value)
        return tuple(params[n] for n in self.names) if self.names is not None else params

    def rows(self, rows: Iterable[Mapping[str, Any]], columns: Sequence[str],
             fixed: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Each row's values of ``columns`` as a tuple, converted, for an executemany or COPY.

        ``fixed`` gives columns the same value in every row. A conversion runs once per
        distinct value in a row (a timestamp shared by a whole batch is converted once).
        """
        # A loop per row, not per value: this is half of a bulk load's CPU otherwise.
        processors = self.processors
        last: dict[str, tuple[Any, Any]] = {}
        constants: dict[str, Any] = {}
        for name, raw in (fixed or {}).items():
            proc = processors.get(name)
            constants[name] = raw if proc is None or raw is None else proc(raw)
        taken = [name for name in columns if name not in constants]
        get = _tuple_getter(taken)
        conversions = [(i, name, processors[name]) for i, name in enumerate(taken)
                       if name in processors]
        # the columns in order, from the row's values followed by the constants
        in_order = _tuple_getter([(taken + list(constants)).index(name) for name in columns])
        tail = list(constants.values())
        out: list[tuple[Any, ...]] = []
        for row in rows:
            values: Sequence[Any] = get(row)
            if conversions:
                values = changed = list(values)
                for i, name, proc in conversions:
                    raw = changed[i]
                    if raw is not None:
                        cached = last.get(name)
                        if cached is not None and cached[0] is raw:
                            changed[i] = cached[1]
                        else:
                            changed[i] = converted = proc(raw)
                            last[name] = (raw, converted)
            if tail:
                values = in_order([*values, *tail])
            out.append(tuple(values))
        return out


def _tuple_getter(keys: Sequence[Any]) -> Callable[[Any], tuple[Any, ...]]:
    """``itemgetter(*keys)`` (one C call per row), always returning a tuple."""
    if len(keys) == 1:
        key = keys[0]
        return lambda item: (item[key],)
    if not keys:
        return lambda _item: ()
    return itemgetter(*keys)


class Prepared:
    """A statement compiled once per dialect and run on a DBAPI cursor (see the module)."""

    def __init__(self, stmt: ClauseElement | Callable[[Dialect], ClauseElement]) -> None:
        """``stmt``, or a function that builds it for a dialect (e.g. with SQLite's
        ``INDEXED BY``)."""
        self._build = stmt if not isinstance(stmt, ClauseElement) else lambda _dialect: stmt
        self._plans: dict[str, Plan] = {}

    def plan(self, dialect: Dialect) -> Plan:
        """The statement compiled for ``dialect`` (compiled on first use)."""
        plan = self._plans.get(dialect.name)
        if plan is None:
            compiled = cast(SQLCompiler, self._build(dialect).compile(dialect=dialect))
            names = tuple(compiled.positiontup or ()) if compiled.positional else None
            defaults = dict(compiled.construct_params(_check=False))
            processors = {}
            for bind in compiled.binds.values():
                proc = bind_processor(bind.type, dialect)
                if proc is not None:
                    processors[bind.key] = proc
            plan = self._plans[dialect.name] = Plan(compiled.string, names, defaults, processors)
        return plan

    def bind(self, dialect: Dialect, values: Mapping[str, Any]) -> tuple[str, Any]:
        """The SQL text and the driver's parameters for ``values``."""
        plan = self.plan(dialect)
        return plan.sql, plan.params(values)

    def executemany(self, cursor: Any, dialect: Dialect,
                    rows: Iterable[Mapping[str, Any]]) -> None:
        """Run it once per row of ``rows`` in one executemany (driver errors wrapped)."""
        plan = self.plan(dialect)
        params = [plan.params(values) for values in rows]
        if params:
            executemany(cursor, dialect, plan.sql, params)

    def execute(self, cursor: Any, dialect: Dialect, values: Mapping[str, Any]) -> Any:
        """Run it on ``cursor`` (driver errors wrapped as SQLAlchemy's); the cursor."""
        sql, params = self.bind(dialect, values)
        try:
            cursor.execute(sql, params)
        except dialect.loaded_dbapi.Error as err:
            raise exc.DBAPIError.instance(sql, params, err, dialect.loaded_dbapi.Error,
                                          dialect=dialect) from err
        return cursor


def driver_cursor(conn: Connection) -> Any:
    """A DBAPI cursor on ``conn``'s connection, inside its transaction."""
    return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]


_INSERTS: dict[Table, Prepared] = {}


def insert_of(table: Table) -> Prepared:
    """An INSERT of every column of ``table``, prepared (one per table)."""
    prepared = _INSERTS.get(table)
    if prepared is None:
        prepared = _INSERTS[table] = Prepared(insert(table))
    return prepared


def executemany(cursor: Any, dialect: Dialect, sql: str, params: Sequence[Any]) -> None:
    """``cursor.executemany`` with driver errors wrapped as SQLAlchemy's."""
    try:
        cursor.executemany(sql, params)
    except dialect.loaded_dbapi.Error as err:
        raise exc.DBAPIError.instance(sql, params, err, dialect.loaded_dbapi.Error,
                                      dialect=dialect, ismulti=True) from err


def bind_processor(type_: TypeEngine[Any], dialect: Dialect) -> Processor | None:
    """How a value of ``type_`` goes to ``dialect``'s driver (None: as it is)."""
    if isinstance(type_, LargeBinary):
        return None  # bytes go to the drivers as they are
    if isinstance(type_, UTCDateTime) and dialect.name == "sqlite":
        return _sqlite_utc_text
    proc: Processor | None = type_.dialect_impl(dialect).bind_processor(dialect)
    return proc


def _sqlite_utc_text(value: datetime) -> str:
    """As UTCDateTime stores a value on SQLite (naive UTC text, always with microseconds),
    at a fraction of the cost of its processors (measured on the check log's batches)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given where a UTC timestamp is required")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


_TIME_READERS: dict[str, Callable[[Any], datetime | None]] = {}
_TIME_BINDERS: dict[str, Processor] = {}


def time_reader(dialect: Dialect) -> Callable[[Any], datetime | None]:
    """Converts a UTCDateTime value as the driver returns it (a Prepared statement's
    result) to an aware datetime."""
    reader = _TIME_READERS.get(dialect.name)
    if reader is None:
        proc = UTCDateTime().dialect_impl(dialect).result_processor(dialect, None)
        reader = _TIME_READERS[dialect.name] = proc or (lambda value: value)
    return reader


def time_binder(dialect: Dialect) -> Processor:
    """Converts an aware datetime to what the driver takes for a UTCDateTime column."""
    binder = _TIME_BINDERS.get(dialect.name)
    if binder is None:
        binder = _TIME_BINDERS[dialect.name] = (bind_processor(UTCDateTime(), dialect)
                                                or (lambda value: value))
    return binder
