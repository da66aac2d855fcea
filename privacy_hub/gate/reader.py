"""The gate's connection to the database: runs its prepared statements on one driver
connection and converts what comes back (privacy_hub/gate/checks.py holds the SQL)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from audit.prepared import Prepared, time_binder, time_reader
from privacy_hub.db import driver_reader


class Reader:
    """Runs the gate's statements on one connection and converts what comes back."""

    def __init__(self, dialect: Dialect, run: Callable[[str, Any], list[Any]]) -> None:
        self.dialect = dialect
        self._run = run
        self._json_ids = dialect.name == "sqlite"
        self.time_param = time_binder(dialect)
        self.time_value = time_reader(dialect)

    def rows(self, sql: Prepared, params: dict[str, Any]) -> list[Any]:
        """Run ``sql`` with ``params`` (all of its parameters, already as the driver takes
        them: see ``time_param`` and ``ids_param``)."""
        plan = sql.plan(self.dialect)
        order = plan.names
        return self._run(plan.sql, params if order is None else tuple(params[k] for k in order))

    def ids_param(self, ids: list[str]) -> Any:
        return json.dumps(ids) if self._json_ids else ids

    @classmethod
    def of_session(cls, session: Session) -> Reader:
        """Within the session's transaction (the request's own reads and writes)."""
        conn = session.connection()
        return cls(conn.dialect, lambda sql, params: list(conn.exec_driver_sql(sql, params)))

    @classmethod
    @contextmanager
    def connect(cls, engine: Engine) -> Iterator[Reader]:
        """A driver connection of the gate's own (db.driver_reader), each statement on its
        own committed snapshot (SQLite: no transaction; PostgreSQL: autocommit)."""
        with driver_reader(engine) as (cursor, dialect):

            def run(sql: str, params: Any) -> list[Any]:
                cursor.execute(sql, params)
                return cursor.fetchall()  # type: ignore[no-any-return]

            yield cls(dialect, run)

