"""The system registry: the downstream systems that receive personal data (Art. 30(1)(d)
recipients), with their API keys and webhook deliveries.

Every change goes through the use case the API calls, with the staff member as the
audited actor. A system's API key and webhook secret are on the page that answers its
registration (or a key rotation) and never again: the hub keeps only a hash of the key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from flask import abort, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from privacy_hub.console import actor, bp, requires
from privacy_hub.console.forms import ActionForm
from privacy_hub.console.registries import _add_errors, _lines, _shown_once
from privacy_hub.console.registry_forms import NewSystemForm
from privacy_hub.systems import InvalidSystem, SystemExists
from privacy_hub.usecases import systems as system_cases
from privacy_hub.usecases.errors import Conflict, Invalid, NotFound
from privacy_hub.web.context import db, hub


def when(value: str | datetime | None) -> datetime | None:
    """An RFC 3339 timestamp of a use case's answer as a datetime (for the date filters)."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def host(url: str | None) -> str | None:
    """The host a webhook URL points at (the list shows where, not the whole URL)."""
    return urlsplit(url).hostname if url else None


#: what a redirect after an action reports (a fixed word in the URL, nothing personal)
def _done_messages() -> dict[str, str]:
    return {
        "test-queued": _("A test webhook is queued: it is listed below, and sent within "
                         "seconds."),
        "retried": _("The delivery is queued again with a fresh set of attempts."),
        "disabled": _("The system is disabled: its key is refused and it receives no more "
                      "webhooks."),
    }


@bp.get("/systems/")
@requires("systems:read")
def systems() -> str:
    return render_template("console/systems.html", nav="systems",
                           systems=system_cases.registry(db()), when=when, host=host)


@bp.route("/systems/-/new", methods=["GET", "POST"])
@requires("systems:write")
def system_new() -> str | Response | tuple[str, int]:
    form = NewSystemForm()
    if form.validate_on_submit():
        purposes = _lines(form.purposes.data)
        try:
            created = system_cases.register(
                hub(), db(), name=form.name.data.strip(), scopes=form.scopes.data or [],
                purposes=purposes or None, webhook_url=(form.webhook_url.data or "").strip()
                or None, actor=actor())
        except (InvalidSystem, Invalid) as exc:
            _add_errors(form, exc.errors)
        except SystemExists:
            form.name.errors = [*form.name.errors, _("A system with this name exists already.")]
        else:
            return _shown_once(render_template(
                "console/system_key.html", nav="systems", system=created,
                api_key=created["api_key"], webhook_secret=created["webhook_secret"]))
    return render_template("console/system_new.html", nav="systems", form=form), (
        422 if form.errors else 200)


def _system(name: str) -> dict[str, Any]:
    try:
        return system_cases.status(db(), name)
    except NotFound:
        abort(404)


@bp.get("/systems/<name>")
@requires("systems:read")
def system(name: str, error: str | None = None) -> str:
    found = _system(name)
    done = _done_messages().get(request.args.get("done", ""))
    return render_template("console/system.html", nav="systems", system=found,
                           deliveries=system_cases.deliveries_of(db(), name), action=ActionForm(),
                           when=when, error=error, done=done)


def _refused(name: str, exc: Conflict) -> tuple[str, int]:
    return system(name, error=exc.detail), 409


@bp.post("/systems/<name>/rotate-key")
@requires("systems:write")
def system_rotate(name: str) -> str | Response | tuple[str, int]:
    found = _system(name)
    if not ActionForm().validate_on_submit():
        return system(name), 422
    if found["disabled_at"] is not None:
        return _refused(name, Conflict(_("The system is disabled; a new key would not work.")))
    api_key = system_cases.rotate_key(hub(), db(), name, actor=actor())
    return _shown_once(render_template("console/system_key.html", nav="systems", system=found,
                                       api_key=api_key, webhook_secret=None))


@bp.post("/systems/<name>/disable")
@requires("systems:write")
def system_disable(name: str) -> Response | tuple[str, int]:
    _system(name)
    if not ActionForm().validate_on_submit():
        return system(name), 422
    system_cases.disable(hub(), db(), name, actor=actor())
    return redirect(url_for("console.system", name=name, done="disabled"), 303)


@bp.post("/systems/<name>/test-webhook")
@requires("systems:write")
def system_test_webhook(name: str) -> Response | tuple[str, int]:
    _system(name)
    if not ActionForm().validate_on_submit():
        return system(name), 422
    try:
        system_cases.send_test_webhook(db(), name, actor=actor())
    except Conflict as exc:
        return _refused(name, exc)
    return redirect(url_for("console.system", name=name, done="test-queued",
                            _anchor="deliveries"), 303)


@bp.post("/systems/<name>/deliveries/<uuid:delivery_id>/retry")
@requires("systems:write")
def delivery_retry(name: str, delivery_id: object) -> Response | tuple[str, int]:
    _system(name)
    try:
        found = system_cases.delivery(db(), str(delivery_id))
    except NotFound:
        abort(404)
    if found["system"] != name:
        abort(404)
    if not ActionForm().validate_on_submit():
        return system(name), 422
    try:
        system_cases.retry_delivery(db(), str(delivery_id), actor=actor())
    except Conflict as exc:
        return _refused(name, exc)
    return redirect(url_for("console.system", name=name, done="retried",
                            _anchor="deliveries"), 303)
