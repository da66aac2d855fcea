"""Languages of the pages: English and German, chosen by the person.

The choice order: a language picked with the switcher (a cookie), else the signed-in
person's own locale (``g.person_locale``, set by the portal), else the browser's
Accept-Language, else English. The list itself is privacy_hub/languages.py, shared with
the mails.
"""

from __future__ import annotations

from flask import Flask, g, request
from flask_babel import Babel

from privacy_hub.languages import DEFAULT, LANGUAGES, normalise

__all__ = ["COOKIE", "DEFAULT", "LANGUAGES", "babel", "chosen_locale", "init_app",
           "normalise", "select_locale"]

COOKIE = "hub_lang"

babel = Babel()


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT)
    babel.init_app(app, locale_selector=select_locale)


def chosen_locale() -> str | None:
    """The page's language if the person or their browser chose it; None when the page
    fell back to English for want of a choice (a mail then follows the customer's
    profile instead of that fallback)."""
    chosen = normalise(request.cookies.get(COOKIE))
    if chosen:
        return chosen
    own = normalise(g.get("person_locale"))
    if own:
        return own
    return request.accept_languages.best_match(list(LANGUAGES))


def select_locale() -> str:
    return chosen_locale() or DEFAULT
