"""The consent package's error family; the API maps these to problem documents."""

from __future__ import annotations


class ConsentError(Exception):
    """Base class."""


class InvalidInput(ConsentError):
    """Field-level validation failed; ``errors`` maps field names to messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("invalid: " + ", ".join(sorted(errors)))
        self.errors = errors


class UnknownPurpose(ConsentError):
    """No purpose with this key is registered."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no purpose {key!r}")
        self.key = key


class UnknownNotice(ConsentError):
    """No notice of this version in this language is published."""


class Conflict(ConsentError):
    """A state conflict (409): e.g. changing a purpose's legal basis, re-posting a notice."""


class TokenInvalid(ConsentError):
    """A confirmation token is unknown, used or expired."""


class DpiaRequired(Conflict):
    """R-DPBD-03: a high-risk purpose cannot run without a data protection impact
    assessment (Art. 35(1)); the 409 names ``dpia_ref``."""
