"""SQL building blocks shared by every package's tables.

This is the lowest layer, so the naming convention and the column types that all
packages use live here. Each package still owns its own ``DeclarativeBase`` and
``MetaData``; they only agree on names and types.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, MetaData
from sqlalchemy.types import TypeDecorator

# One naming convention for every package's MetaData (Alembic ignores conventions
# on metadata sequences, so they must be identical dicts: alembic#1396).
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    """A MetaData carrying the shared naming convention."""
    return MetaData(naming_convention=dict(NAMING_CONVENTION))


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    SQLite has no time zones: values are stored as naive UTC and come back aware.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where a UTC timestamp is required")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, aware, in UTC, to the microsecond."""
    return datetime.now(UTC)


_V7_VERSION_AND_VARIANT = (0x7 << 76) | (0b10 << 62)
_RAND_A_MASK = 0xFFF << 64
_RAND_B_MASK = (1 << 62) - 1


def new_id() -> str:
    """A new UUID version 7 (RFC 9562) as a string: the time in milliseconds, then 74
    random bits. Never derived from data.

    Time-ordered rather than random (version 4): new rows go to the end of every index on
    an id instead of to a random page of it. Creating customers writes about a quarter
    fewer pages, and a bulk import runs about a quarter faster (bench/README.md). The id
    shows when its row was created, to the millisecond, which the row's ``created_at``
    and its audit entry say anyway.
    """
    rand = int.from_bytes(os.urandom(10), "big")
    value = ((time.time_ns() // 1_000_000) << 80 | _V7_VERSION_AND_VARIANT
             | (rand << 2) & _RAND_A_MASK | rand & _RAND_B_MASK)
    return str(uuid.UUID(int=value))


def rfc3339(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a trailing Z, as the API promises."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
