"""The front door: the landing page, the shop's colours, and the language switch."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, current_app, redirect, render_template, request
from flask_babel import get_locale
from werkzeug.wrappers import Response as WerkzeugResponse

from privacy_hub.web import brand, i18n
from privacy_hub.web.context import hub

bp = Blueprint("front", __name__)

#: a year: the language choice is a preference, not personal data about anyone
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.context_processor(_layout)


def _layout() -> dict[str, object]:
    """What every page's layout shows: the shop, the languages, where things are."""
    settings = hub().settings
    return {
        "shop_name": settings.shop_name,
        "controller_name": settings.controller_name,
        "policy_url": settings.controller_policy_url,
        "languages": i18n.LANGUAGES,
        "lang": str(get_locale() or i18n.DEFAULT),
        "has_page": lambda endpoint: endpoint in current_app.view_functions,
    }


@bp.get("/")
def index() -> str:
    """Where a customer, a DPO or an engineer starts."""
    return render_template("front/index.html")


@bp.get("/brand.css")
def brand_css() -> Response:
    css = brand.stylesheet(hub().settings.brand_color)
    response = Response(css, mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def _local(target: str | None) -> str:
    """Only a path on this site: never an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target:
        return "/"
    return target


@bp.get("/language/<string:code>")
def choose_language(code: str) -> WerkzeugResponse:
    """Remember the language picked with the switcher and go back to the page."""
    response = redirect(_local(request.args.get("next")), 303)
    chosen = i18n.normalise(code)
    if chosen:
        response.set_cookie(i18n.COOKIE, chosen, max_age=LANGUAGE_COOKIE_AGE, httponly=True,
                            samesite="Lax", secure=request.is_secure)
    return response
