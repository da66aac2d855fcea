"""The pages pass their language down to the mails they queue: a person who asks from
the German page reads a German mail, whatever their profile says; a page that only fell
back to English leaves the choice to the customer's profile."""

from __future__ import annotations

import email
import re
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest
from flask.testing import FlaskClient

import audit
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from privacy_hub.jobs.worker import Worker

ACTOR = audit.Actor("cli", "tests")
TOKEN = "t0ken-for-mail-language-tests-aaaaaaaaaaaaaaaaaaaa"


def add(hub: Hub, address: str, locale: str | None) -> str:
    fields = {"email": address, **({"locale": locale} if locale else {})}
    with transaction(hub.sessions) as session:
        profile, _ = hub.vault.upsert(session, fields, actor=ACTOR)
    return str(profile["id"])


def sent(hub: Hub) -> list[EmailMessage]:
    """Deliver what is queued (no SMTP host: into the outbox folder) and read it back."""
    worker = Worker(hub)
    while worker.run_once():
        pass
    messages = []
    for path in sorted((hub.settings.instance_path / "outbox").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=default_policy)
        assert isinstance(message, EmailMessage)
        messages.append(message)
    return messages


def csrf(client: FlaskClient, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page)
    assert match, page[:500]
    return match.group(1)


def ask_for_link(client: FlaskClient, address: str, **headers: str) -> None:
    resp = client.post("/portal/", data={"email": address, "csrf_token": csrf(client, "/portal/")},
                       headers=headers)
    assert resp.status_code == 200


def test_an_english_customer_asking_from_the_german_page_gets_german(
        client: FlaskClient, hub: Hub) -> None:
    add(hub, "liam@example.org", "en-IE")
    ask_for_link(client, "liam@example.org", **{"Accept-Language": "de-DE,de;q=0.9"})
    (message,) = sent(hub)
    assert message["Subject"] == "Ihr Anmeldelink"
    assert message["Content-Language"] == "de"


def test_the_language_switcher_choice_is_the_page_language(
        client: FlaskClient, hub: Hub) -> None:
    add(hub, "mila@example.org", "de-DE")
    client.set_cookie("hub_lang", "en")
    ask_for_link(client, "mila@example.org", **{"Accept-Language": "de"})
    (message,) = sent(hub)
    assert message["Subject"] == "Your sign-in link"


def test_a_page_with_no_language_chosen_leaves_it_to_the_profile(
        client: FlaskClient, hub: Hub) -> None:
    """No cookie, no Accept-Language: the page is English only by default, so Mila's own
    German wins."""
    add(hub, "mila@example.org", "de-DE")
    ask_for_link(client, "mila@example.org")
    (message,) = sent(hub)
    assert message["Subject"] == "Ihr Anmeldelink"


def test_a_double_opt_in_from_the_german_portal_page_is_confirmed_in_german(
        client: FlaskClient, hub: Hub, catalogue: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Liam has no locale in his profile; he allows the newsletter on the German page."""
    monkeypatch.setattr("privacy_hub.usecases.sign_in.secrets.token_urlsafe", lambda _n: TOKEN)
    add(hub, "liam@example.org", None)
    ask_for_link(client, "liam@example.org")
    confirm = f"/portal/sign-in/confirm?token={TOKEN}"
    assert client.post("/portal/sign-in/confirm", data={
        "token": TOKEN, "csrf_token": csrf(client, confirm)}).status_code == 303
    client.set_cookie("hub_lang", "de")
    resp = client.post("/portal/choices/marketing.email", data={
        "granted": "1", "csrf_token": csrf(client, "/portal/choices")})
    assert resp.status_code == 303
    sign_in_mail, confirmation = sent(hub)
    assert sign_in_mail["Subject"] == "Your sign-in link"  # asked from a page in no chosen language
    assert confirmation["Subject"].startswith("Bitte bestätigen Sie: ")
    body = confirmation.get_body(("plain",))
    assert body is not None
    assert "Öffnen Sie diesen Link, um zu bestätigen:" in body.get_content()
