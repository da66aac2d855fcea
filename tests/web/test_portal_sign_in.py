"""Signing in to the customer portal through Flask's test client (the portal issue):
links work once and for 15 minutes, forms need their CSRF token, unknown addresses are
answered alike, and no token or address reaches a log, an audit entry or a URL."""

from __future__ import annotations

import logging
import re
import time
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from audit.clock import utcnow
from audit.models import AuditEntry
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from privacy_hub.jobs.outbox import OutboxJob
from privacy_hub.models import SignInLink
from tests.conftest import SEED_EMAIL

TOKEN = "t0ken-for-tests-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"


@pytest.fixture
def app(hub: Hub) -> Flask:
    from privacy_hub.app import create_app

    app = create_app(hub=hub)
    app.config["WTF_CSRF_ENABLED"] = True
    return app


@pytest.fixture
def known_token(monkeypatch: pytest.MonkeyPatch) -> str:
    """Links made from now on carry TOKEN (the mail itself is sealed in the outbox)."""
    monkeypatch.setattr("privacy_hub.usecases.sign_in.secrets.token_urlsafe", lambda _n: TOKEN)
    return TOKEN


def _csrf(client: FlaskClient, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page)
    assert match, page[:500]
    return match.group(1)


def _ask_for_link(client: FlaskClient, email: str) -> str:
    resp = client.post("/portal/", data={"email": email, "csrf_token": _csrf(client, "/portal/")})
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    return resp.get_data(as_text=True)


def _use(client: FlaskClient, token: str) -> int:
    page = client.get(f"/portal/sign-in/confirm?token={token}")
    if page.status_code != 200:
        return page.status_code
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True))
    assert csrf
    return client.post("/portal/sign-in/confirm",
                       data={"token": token, "csrf_token": csrf.group(1)}).status_code


def test_a_link_signs_in_once(client: FlaskClient, customer_id: str, known_token: str) -> None:
    _ask_for_link(client, SEED_EMAIL)
    assert _use(client, known_token) == 303
    assert client.get("/portal/data").status_code == 200
    other = client.application.test_client()
    assert _use(other, known_token) == 410  # used: refused
    assert other.get("/portal/data").status_code == 303


def test_an_expired_link_is_refused(client: FlaskClient, customer_id: str, hub: Hub,
                                    known_token: str) -> None:
    _ask_for_link(client, SEED_EMAIL)
    with transaction(hub.sessions) as session:
        for link in session.scalars(select(SignInLink)):
            link.expires_at = utcnow() - timedelta(seconds=1)
    assert _use(client, known_token) == 410
    assert client.get("/portal/data").status_code == 303


def test_forms_without_their_csrf_token_change_nothing(client: FlaskClient, customer_id: str,
                                                        hub: Hub) -> None:
    resp = client.post("/portal/", data={"email": SEED_EMAIL})
    assert resp.status_code == 400
    with hub.sessions() as session:
        assert session.scalar(select(func.count()).select_from(SignInLink)) == 0


def test_known_and_unknown_addresses_get_the_same_answer_and_work(
        client: FlaskClient, customer_id: str, hub: Hub) -> None:
    """No account enumeration: the same page, one mail and one audit entry either way."""
    def counts() -> tuple[int, int]:
        with hub.sessions() as session:
            return (session.scalar(select(func.count()).select_from(OutboxJob)) or 0,
                    session.scalar(select(func.count()).select_from(AuditEntry)) or 0)

    before = counts()
    known = _ask_for_link(client, SEED_EMAIL)
    middle = counts()
    unknown = _ask_for_link(client, "nobody@example.net")
    after = counts()
    assert known == unknown
    assert (middle[0] - before[0], middle[1] - before[1]) == (after[0] - middle[0],
                                                              after[1] - middle[1]) == (1, 1)


def test_no_token_or_address_reaches_logs_audit_or_urls(
        client: FlaskClient, customer_id: str, hub: Hub, known_token: str,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _ask_for_link(client, SEED_EMAIL)
    resp = client.post("/portal/sign-in/confirm", data={"token": known_token,
                                                        "csrf_token": _csrf(client, "/portal/")})
    assert resp.status_code == 303 and SEED_EMAIL not in resp.headers["Location"]
    for path in ("/portal/data", "/portal/choices", "/portal/history", "/portal/requests"):
        assert client.get(path).status_code == 200
    assert known_token not in caplog.text and SEED_EMAIL not in caplog.text
    with hub.sessions() as session:
        details = " ".join(e.details for e in session.scalars(select(AuditEntry)))
    assert SEED_EMAIL not in details and known_token not in details


def test_the_portal_session_cookie_is_its_own(client: FlaskClient, customer_id: str,
                                              known_token: str) -> None:
    _ask_for_link(client, SEED_EMAIL)
    page = client.get(f"/portal/sign-in/confirm?token={known_token}").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert csrf
    resp = client.post("/portal/sign-in/confirm", data={"token": known_token,
                                                        "csrf_token": csrf.group(1)})
    cookie = next(h for h in resp.headers.getlist("Set-Cookie") if h.startswith("hub_portal="))
    assert "Path=/portal" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Expires=" in cookie  # an idle timeout, renewed by each request


def test_an_idle_session_ends(app: Flask, client: FlaskClient, customer_id: str,
                              known_token: str) -> None:
    app.permanent_session_lifetime = timedelta(seconds=1)
    _ask_for_link(client, SEED_EMAIL)
    assert _use(client, known_token) == 303
    assert client.get("/portal/data").status_code == 200
    time.sleep(2.1)  # the signature's age is checked to the second
    assert client.get("/portal/data").status_code == 303
