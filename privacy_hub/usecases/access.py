"""What a caller may touch: a system limited to some purposes may check, read or record
nothing for any other purpose (API.md "Conventions")."""

from __future__ import annotations

from collections.abc import Callable

from privacy_hub.usecases.errors import Refused

#: whether the caller may use a purpose (a system's registered purposes; staff: all)
PurposeFilter = Callable[[str], bool]


def any_purpose(_purpose: str) -> bool:
    """The filter of callers that are not limited to purposes."""
    return True


def require_purpose(may_use: PurposeFilter, purpose: str) -> None:
    """Refuse a purpose the caller is not registered for."""
    if not may_use(purpose):
        raise Refused(f"This system is not registered for the purpose {purpose!r}.",
                      type_="purpose-not-allowed")
