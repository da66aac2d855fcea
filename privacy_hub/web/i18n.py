"""Languages of the pages: English and German, chosen by the person.

The choice order: a language picked with the switcher (a cookie), else the signed-in
person's own locale (``g.person_locale``, set by the portal), else the browser's
Accept-Language, else English.
"""

from __future__ import annotations

from flask import Flask, g, request
from flask_babel import Babel

#: the languages every page is complete in, with their own names for the switcher
LANGUAGES: dict[str, str] = {"en": "English", "de": "Deutsch"}
DEFAULT = "en"
COOKIE = "hub_lang"

babel = Babel()


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT)
    babel.init_app(app, locale_selector=select_locale)


def normalise(tag: str | None) -> str | None:
    """``de-AT`` -> ``de``; None for a language the pages are not written in."""
    if not tag:
        return None
    primary = tag.replace("_", "-").split("-")[0].lower()
    return primary if primary in LANGUAGES else None


def select_locale() -> str:
    chosen = normalise(request.cookies.get(COOKIE))
    if chosen:
        return chosen
    own = normalise(g.get("person_locale"))
    if own:
        return own
    return request.accept_languages.best_match(list(LANGUAGES), default=DEFAULT) or DEFAULT
