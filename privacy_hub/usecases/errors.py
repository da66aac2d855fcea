"""Use-case errors that no lower package raises: each maps to one problem document
(privacy_hub/api/problems.py) and to a friendly page in the portal and console."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy.exc import IntegrityError, OperationalError

CONCURRENT_CHANGE = ("The change conflicts with a concurrent change; nothing was saved. "
                     "Retry the request.")
UNAVAILABLE = "The database is unavailable; nothing was saved. Retry the request."


class UseCaseError(Exception):
    """A refusal with a message fit to show the caller (never personal data)."""

    def __init__(self, detail: str, *, type_: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.type_ = type_
        self.extra = extra


class NotFound(UseCaseError):
    """No such thing (404)."""


class Refused(UseCaseError):
    """Not allowed for this caller, or not by the gate (403)."""


class Conflict(UseCaseError):
    """The current state does not allow it (409)."""


class Gone(UseCaseError):
    """It existed but was deleted, e.g. after its retention period (410)."""


class Invalid(UseCaseError):
    """Invalid input, each bad field named (422)."""

    def __init__(self, detail: str, *, errors: Mapping[str, list[str]],
                 type_: str | None = None, **extra: Any) -> None:
        super().__init__(detail, type_=type_, **extra)
        self.errors = dict(errors)


class Unavailable(UseCaseError):
    """The database could not take the change; nothing was saved (503, retry)."""

    def __init__(self) -> None:
        super().__init__(UNAVAILABLE)


@contextmanager
def group_committed() -> Iterator[None]:
    """Around a write committed by the use case itself (a group commit): a constraint that
    refused it is a Conflict, a database that could not take it Unavailable. A dropped
    connection goes on as it is (the pool replaces it; the caller answers 503)."""
    try:
        yield
    except IntegrityError:
        raise Conflict(CONCURRENT_CHANGE, type_="concurrent-change") from None
    except OperationalError as exc:
        if exc.connection_invalidated:
            raise
        raise Unavailable() from None
