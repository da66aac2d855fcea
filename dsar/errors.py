"""The dsar package's errors; the API maps them to problem documents."""

from __future__ import annotations

from dsar.workflow import TransitionRefused


class DsarError(Exception):
    """Base class."""


class InvalidRequest(DsarError):
    """Field-level validation failed; ``errors`` maps field names to messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("invalid: " + ", ".join(sorted(errors)))
        self.errors = errors


class RequestNotFound(DsarError):
    """No such request, or no such customer or system part for it."""


class VerificationFailed(DsarError):
    """The verification token is unknown, used, expired or for another request."""


__all__ = ["DsarError", "InvalidRequest", "RequestNotFound", "TransitionRefused",
           "VerificationFailed"]
