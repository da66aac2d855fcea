"""The hub's one notion of now: aware UTC datetimes, and RFC 3339 as the API writes them."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, aware, in UTC, to the microsecond."""
    return datetime.now(UTC)


def rfc3339(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a trailing Z, as the API promises."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
