"""One permission matrix (privacy_hub/staff/roles.py) decides every console view and
action (R-SEC-04, least privilege): every route is walked for every role, and answers 403
exactly where the matrix says no."""

from __future__ import annotations

import uuid

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import UUIDConverter

from privacy_hub.console import OPEN_PAGES
from privacy_hub.hub import Hub
from privacy_hub.staff.roles import PERMISSIONS, ROLES, allows
from tests.console import csrf, make_staff, signed_in_client

#: views every signed-in staff member may use (no permission to declare)
EVERYONE = frozenset({"console.home", "console.sign_out"})


@pytest.fixture
def app(hub: Hub) -> Flask:
    from privacy_hub.app import create_app

    return create_app(hub=hub)


def _console_routes(app: Flask) -> list[tuple[str, str, str]]:
    """(endpoint, method, a URL for it) for every console route but the open pages."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("console.") or rule.endpoint in OPEN_PAGES:
            continue
        values = {arg: str(uuid.uuid4()) if isinstance(rule._converters[arg], UUIDConverter)
                  else "x" for arg in rule.arguments}
        with app.test_request_context():
            url = app.url_for(rule.endpoint, **values)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append((rule.endpoint, method, url))
    return routes


def test_every_console_view_declares_a_permission_of_the_matrix(app: Flask) -> None:
    for endpoint, _method, _url in _console_routes(app):
        if endpoint in EVERYONE:
            continue
        permission = getattr(app.view_functions[endpoint], "permission", None)
        assert permission in PERMISSIONS, f"{endpoint} declares no permission of the matrix"


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_403_exactly_where_the_matrix_says_no(
        app: Flask, hub: Hub, client: FlaskClient, role: str) -> None:
    member = make_staff(hub, role)
    signed_in_client(client, member)
    token = csrf(client, "/console/")
    walked = 0
    for endpoint, method, url in _console_routes(app):
        if endpoint == "console.sign_out":
            continue
        permission = getattr(app.view_functions[endpoint], "permission", None)
        allowed = permission is None or allows(role, permission)
        resp = client.open(url, method=method, data={"csrf_token": token})
        walked += 1
        if allowed:
            assert resp.status_code != 403, f"{role} refused {method} {endpoint}"
        else:
            assert resp.status_code == 403, f"{role} got {resp.status_code} on {method} {endpoint}"
    assert walked >= 5
