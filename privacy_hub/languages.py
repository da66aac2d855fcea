"""The languages the hub speaks to people in: its pages and its mails.

Plain values, no Flask: the web layer (privacy_hub/web/i18n.py) and the mail worker
(privacy_hub/jobs/mail.py) both choose from this one list.
"""

from __future__ import annotations

#: the languages every page and every mail is complete in, with their own names
LANGUAGES: dict[str, str] = {"en": "English", "de": "Deutsch"}
DEFAULT = "en"


def normalise(tag: str | None) -> str | None:
    """``de-AT`` -> ``de``; None for a language the hub is not written in."""
    if not tag:
        return None
    primary = tag.replace("_", "-").split("-")[0].lower()
    return primary if primary in LANGUAGES else None


def choose(*preferences: str | None) -> str:
    """The first of ``preferences`` the hub speaks (each normalised), else English."""
    for tag in preferences:
        found = normalise(tag)
        if found:
            return found
    return DEFAULT
