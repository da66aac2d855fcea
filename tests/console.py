"""Helpers for console tests: staff members with known credentials, signed-in clients."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pyotp
from flask.testing import FlaskClient

import audit
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from privacy_hub.usecases import staff as staff_cases

PASSWORD = "correct horse battery staple"
ACTOR = audit.Actor("cli", "tests")


@dataclass
class Staff:
    id: str
    email: str
    role: str
    secret: str
    recovery_codes: tuple[str, ...]
    password: str = PASSWORD

    def code(self, offset_steps: int = 0) -> str:
        """The authenticator's code now (or ``offset_steps`` steps of 30 s away)."""
        return str(pyotp.TOTP(self.secret).at(time.time() + 30 * offset_steps))


def make_staff(hub: Hub, role: str, email: str | None = None) -> Staff:
    """A staff member created through the use case, as `privacy-hub staff create` does."""
    email = email or f"{role}.{time.monotonic_ns()}@staff.example"
    with transaction(hub.sessions) as session:
        member, enrolment = staff_cases.create(hub, session, email=email, role=role,
                                               password=PASSWORD, actor=ACTOR)
    secret = parse_qs(urlsplit(enrolment.totp_uri).query)["secret"][0]
    return Staff(member["id"], email, role, secret, enrolment.recovery_codes)


def csrf(client: FlaskClient, path: str) -> str:
    """The CSRF token of the form on the page at ``path``."""
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page)
    assert match, page[:500]
    return match.group(1)


def sign_in(client: FlaskClient, member: Staff, *, code: str | None = None,
            password: str | None = None) -> int:
    """Post the sign-in form; the status code (303 when signed in)."""
    return client.post("/console/sign-in", data={
        "email": member.email, "password": password or member.password,
        "code": code if code is not None else member.code(),
        "csrf_token": csrf(client, "/console/sign-in")}).status_code


def signed_in_client(client: FlaskClient, member: Staff) -> FlaskClient:
    """``client``, signed in to the console as ``member``."""
    assert sign_in(client, member) == 303
    return client
