"""The Flask application factory."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from sqlalchemy import text

from privacy_hub import console, portal
from privacy_hub.api import init_app as init_api
from privacy_hub.api.idempotency import forget_customer
from privacy_hub.config import Settings
from privacy_hub.hub import Hub
from privacy_hub.web import banner, demo_shop, front, i18n, pages, security, sessions
from privacy_hub.web import context as web

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, hub: Hub | None = None) -> Flask:
    """Build the hub's web app. Without arguments, settings come from the environment."""
    if hub is None:
        hub = Hub.open(settings or Settings.from_env())
    app = Flask(__name__, instance_path=str(hub.settings.instance_path))
    if hub.settings.secret_key is None:  # resolved() always loads it; guard against misuse
        raise RuntimeError("settings were not resolved: no secret key")
    app.config.update(
        SECRET_KEY=hub.settings.secret_key,
        MAX_CONTENT_LENGTH=hub.settings.max_content_length,
        JSON_SORT_KEYS=False,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["privacy_hub"] = hub
    if forget_customer not in hub.vault.erasure_hooks:
        hub.vault.erasure_hooks.append(forget_customer)
    web.init_app(app)
    security.init_app(app)
    i18n.init_app(app)
    sessions.init_app(app)
    front.init_app(app)
    portal.init_app(app)
    console.init_app(app)
    app.register_blueprint(banner.bp)
    app.register_blueprint(demo_shop.bp)
    init_api(app)
    app.register_blueprint(pages.bp)

    @app.get("/healthz")
    def healthz() -> Response:
        """The process is up."""
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        """The database answers and the keys are loaded."""
        try:
            with hub.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            with hub.sessions() as session:
                hub.keyring.hub_key(session, "blind_index")
        except Exception as exc:
            log.warning("not ready: %s", type(exc).__name__)
            return jsonify(status="unavailable", reason=type(exc).__name__), 503
        return jsonify(status="ok"), 200

    @app.after_request
    def _security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if response.mimetype in ("application/json", "application/problem+json"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app
