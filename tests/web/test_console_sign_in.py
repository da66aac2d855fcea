"""Signing in to the console (R-SEC-04: DPO and admin actions need MFA): password and
TOTP code, one answer for every failure, lockout, recovery codes, sessions that end."""

from __future__ import annotations

import logging

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from audit.models import AuditEntry
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from privacy_hub.staff.accounts import MAX_FAILURES
from privacy_hub.usecases import staff as staff_cases
from tests.console import ACTOR, Staff, csrf, make_staff, sign_in

FAILED = "That did not work. Check your email address, password and code"
LOCKED = "Too many failed sign-ins."


@pytest.fixture
def app(hub: Hub) -> Flask:
    from privacy_hub.app import create_app

    app = create_app(hub=hub)
    app.config["WTF_CSRF_ENABLED"] = True
    return app


@pytest.fixture
def dpo(hub: Hub) -> Staff:
    return make_staff(hub, "dpo", "dana.dpo@staff.example")


def _answer(client: FlaskClient, email: str, password: str, code: str) -> tuple[int, str]:
    resp = client.post("/console/sign-in", data={
        "email": email, "password": password, "code": code,
        "csrf_token": csrf(client, "/console/sign-in")})
    return resp.status_code, resp.get_data(as_text=True)


def test_password_and_code_sign_in_and_the_action_is_audited_by_staff_id(
        client: FlaskClient, hub: Hub, dpo: Staff) -> None:
    assert client.get("/console/").status_code == 303  # not signed in: to the sign-in page
    assert sign_in(client, dpo) == 303
    page = client.get("/console/")
    assert page.status_code == 200 and "Data protection officer" in page.get_data(as_text=True)
    with hub.sessions() as session:
        entry = session.scalars(select(AuditEntry).where(
            AuditEntry.action == "staff.signed_in")).one()
    assert (entry.actor_type, entry.actor_id) == ("staff", dpo.id)


def test_a_password_without_a_valid_code_is_refused_like_an_unknown_address(
        client: FlaskClient, dpo: Staff) -> None:
    wrong_code = _answer(client, dpo.email, dpo.password, "000000" if dpo.code() != "000000"
                         else "111111")
    wrong_password = _answer(client, dpo.email, "not the password at all", dpo.code())
    unknown = _answer(client, "nobody@staff.example", dpo.password, dpo.code())
    assert wrong_code[0] == wrong_password[0] == unknown[0] == 401
    for _status, page in (wrong_code, wrong_password, unknown):
        assert FAILED in page
    assert client.get("/console/").status_code == 303


def test_a_code_works_once(app: Flask, dpo: Staff) -> None:
    code = dpo.code()
    assert sign_in(app.test_client(), dpo, code=code) == 303
    assert sign_in(app.test_client(), dpo, code=code) == 401  # replayed (RFC 6238 5.2)


def test_repeated_failures_lock_the_account_even_for_the_right_credentials(
        client: FlaskClient, hub: Hub, dpo: Staff) -> None:
    for _attempt in range(MAX_FAILURES):
        status, page = _answer(client, dpo.email, "wrong password, try again", dpo.code())
        assert status == 401
    assert LOCKED in page
    status, page = _answer(client, dpo.email, dpo.password, dpo.code(offset_steps=1))
    assert status == 401 and LOCKED in page
    with hub.sessions() as session:
        locked = session.scalars(select(AuditEntry).where(
            AuditEntry.action == "staff.sign_in_failed")).all()
    assert len(locked) == MAX_FAILURES and '"locked":true' in locked[-1].details.replace(" ", "")


def test_an_unknown_address_locks_after_as_many_failures_as_a_real_one(
        client: FlaskClient) -> None:
    pages = [_answer(client, "nobody@staff.example", "some password here", "123456")[1]
             for _ in range(MAX_FAILURES)]
    assert all(LOCKED not in p for p in pages[:-1]) and LOCKED in pages[-1]


def test_a_recovery_code_signs_in_once(app: Flask, dpo: Staff) -> None:
    code = dpo.recovery_codes[0]
    assert sign_in(app.test_client(), dpo, code=code.upper()) == 303
    assert sign_in(app.test_client(), dpo, code=code) == 401


def test_a_disabled_member_is_signed_out_at_once(client: FlaskClient, hub: Hub,
                                                  dpo: Staff) -> None:
    assert sign_in(client, dpo) == 303
    with transaction(hub.sessions) as session:
        staff_cases.disable(hub, session, dpo.id, actor=ACTOR)
    assert client.get("/console/").status_code == 303
    assert sign_in(client, dpo, code=dpo.code(offset_steps=1)) == 401


def test_a_portal_cookie_does_not_open_the_console(client: FlaskClient, app: Flask) -> None:
    """Both cookies are signed with one key: a customer's session value copied into the
    console's cookie must sign nobody in there."""
    from flask.sessions import SecureCookieSessionInterface

    serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    assert serializer is not None
    value = serializer.dumps({"_user_id": "customer:" + "0" * 36, "_fresh": True})
    client.set_cookie("hub_console", value, path="/console")
    assert client.get("/console/").status_code == 303


def test_no_address_password_or_code_reaches_logs_or_audit(
        client: FlaskClient, hub: Hub, dpo: Staff, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    code = dpo.code()
    _answer(client, dpo.email, "wrong password, try again", code)
    assert sign_in(client, dpo, code=dpo.code(offset_steps=1)) == 303
    with hub.sessions() as session:
        details = " ".join(e.details for e in session.scalars(select(AuditEntry)))
    for secret in (dpo.email, dpo.password, dpo.secret):
        assert secret not in caplog.text and secret not in details
