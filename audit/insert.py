"""Inserting chained entries in the fewest statements the backend allows.

One entry: one prepared INSERT. A group commit's few entries on PostgreSQL: one INSERT
with a row of values per entry. A bulk load's thousands on PostgreSQL: COPY. Otherwise
one executemany. All through the driver: SQLAlchemy's per-row parameter processing cost
more than hashing the entries; they all share one ``recorded_at``, converted once.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Connection, Table, exc, insert

from audit.chain import Link
from audit.models import AuditEntry
from audit.prepared import Prepared, driver_cursor

_ENTRIES = cast(Table, AuditEntry.__table__)
_INSERT_ENTRIES = Prepared(insert(_ENTRIES))

#: the most entries inserted as one multi-row statement on PostgreSQL
_PG_MULTIROW_MAX = 64
_LINK_TIME = Link._fields.index("recorded_at")
_PG_COLUMNS_MATCH = {c.name for c in _ENTRIES.c} == set(Link._fields)
_PG_NAMES = ", ".join(Link._fields)
_PG_ROW = "(" + ", ".join(["%s"] * len(Link._fields)) + ")"
_PG_COPY = f"COPY {_ENTRIES.name} ({_PG_NAMES}) FROM STDIN"


def insert_links(conn: Connection, links: list[Link], cursor: Any = None) -> None:
    """Insert chained entries through the driver, in ``conn``'s transaction."""
    dialect = conn.dialect
    if cursor is None:
        cursor = driver_cursor(conn)
    if len(links) == 1:
        _INSERT_ENTRIES.execute(cursor, dialect, links[0]._asdict())
        return
    plan = _INSERT_ENTRIES.plan(dialect)
    params = plan.params(links[0]._asdict())
    stored = params[_LINK_TIME] if isinstance(params, tuple) else params["recorded_at"]
    rows = [link._replace(recorded_at=stored) for link in links]
    if dialect.name == "postgresql" and _PG_COLUMNS_MATCH and len(rows) <= _PG_MULTIROW_MAX:
        # A group commit's few entries: one statement with a row of values per entry
        # (psycopg's executemany runs a pipeline, which costs more for a handful of rows).
        # More (a bulk load's thousands) go through COPY below.
        for start in range(0, len(rows), _PG_MULTIROW_MAX):
            chunk = rows[start:start + _PG_MULTIROW_MAX]
            # Only constants and placeholders go into the text; the values are parameters.
            text = (f"INSERT INTO {_ENTRIES.name} ({_PG_NAMES}) VALUES "  # noqa: S608
                    + ",".join([_PG_ROW] * len(chunk)))
            try:
                cursor.execute(text, [value for row in chunk for value in row])
            except dialect.loaded_dbapi.Error as err:
                raise exc.DBAPIError.instance(text, None, err, dialect.loaded_dbapi.Error,
                                              dialect=dialect) from err
        return
    if dialect.name == "postgresql" and _PG_COLUMNS_MATCH:
        # COPY: a sixth of the CPU of an executemany pipeline for a thousand entries, and
        # one statement to build instead of one with tens of thousands of parameters.
        try:
            with cursor.copy(_PG_COPY) as copy:
                for row in rows:
                    copy.write_row(row)
        except dialect.loaded_dbapi.Error as err:
            raise exc.DBAPIError.instance(_PG_COPY, None, err, dialect.loaded_dbapi.Error,
                                          dialect=dialect) from err
        return
    positional = isinstance(params, tuple) and list(plan.names or ()) == list(Link._fields)
    if not positional and isinstance(params, tuple):
        _INSERT_ENTRIES.executemany(cursor, dialect, [link._asdict() for link in links])
        return
    try:
        cursor.executemany(plan.sql, rows if positional else [row._asdict() for row in rows])
    except dialect.loaded_dbapi.Error as err:
        raise exc.DBAPIError.instance(plan.sql, None, err, dialect.loaded_dbapi.Error,
                                      dialect=dialect, ismulti=True) from err
