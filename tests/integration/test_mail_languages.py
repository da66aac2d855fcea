"""Every mail arrives in its recipient's language, through the worker and a real SMTP
server: the page's language when the person asked from a page, else the customer's own
locale from the vault, else English."""

from __future__ import annotations

from collections.abc import Iterator
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path

import pytest

import audit
from consent import purposes
from consent.ledger import Decision
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from privacy_hub.jobs.worker import Worker
from privacy_hub.usecases import requests, sign_in
from tests.hubs import make_hub
from tests.smtp import Inbox, smtp_server, text_of

ACTOR = audit.Actor("staff", "dpo-1")
MILA, LIAM, NOAH = "mila@example.org", "liam@example.org", "noah@example.org"


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with smtp_server() as box:
        yield box


@pytest.fixture
def hub(tmp_path: Path, db_url: str, inbox: Inbox) -> Iterator[Hub]:
    h = make_hub(tmp_path, db_url, smtp_host="127.0.0.1", smtp_port=inbox.port,
                 mail_from="privacy@shop.example", base_url="https://hub.example")
    yield h
    h.close()


def add(hub: Hub, email: str, locale: str) -> str:
    with transaction(hub.sessions) as session:
        profile, _ = hub.vault.upsert(session, {"email": email, "locale": locale}, actor=ACTOR)
    return str(profile["id"])


def deliver(hub: Hub) -> None:
    worker = Worker(hub)
    while worker.run_once():
        pass


def only_mail(inbox: Inbox, address: str) -> Message:
    (message,) = inbox.to(address)
    return message


def subject(message: Message) -> str:
    return str(make_header(decode_header(str(message["Subject"]))))


def ask_for_sign_in(hub: Hub, inbox: Inbox, email: str, locale: str | None = None) -> Message:
    """The sign-in use case, as the portal calls it (``locale``: the page's language)."""
    with transaction(hub.sessions) as session:
        sign_in.send_link(hub, session, email, locale=locale)
    deliver(hub)
    return only_mail(inbox, email)


def test_a_german_customer_gets_the_sign_in_mail_in_german(hub: Hub, inbox: Inbox) -> None:
    add(hub, MILA, "de-DE")
    message = ask_for_sign_in(hub, inbox, MILA)
    assert subject(message) == "Ihr Anmeldelink"
    assert message["Content-Language"] == "de"
    body = text_of(message)
    assert body.startswith("Guten Tag,")
    assert "Er funktioniert ein einziges Mal und 15 Minuten lang." in body
    assert "https://hub.example/portal/sign-in/confirm?token=" in body
    assert "Hello" not in body


def test_an_english_customer_gets_it_in_english(hub: Hub, inbox: Inbox) -> None:
    add(hub, LIAM, "en-IE")
    message = ask_for_sign_in(hub, inbox, LIAM)
    assert subject(message) == "Your sign-in link"
    assert message["Content-Language"] == "en"
    assert "It works once, for 15 minutes." in text_of(message)


def test_the_language_of_the_page_asked_from_wins_over_the_profile(hub: Hub, inbox: Inbox) -> None:
    """Liam (English profile) reads the German sign-in page: his mail is German."""
    add(hub, LIAM, "en-IE")
    message = ask_for_sign_in(hub, inbox, LIAM, locale="de")
    assert subject(message) == "Ihr Anmeldelink"
    assert text_of(message).startswith("Guten Tag,")


def test_a_language_the_hub_does_not_speak_falls_back_to_english(hub: Hub, inbox: Inbox) -> None:
    add(hub, NOAH, "fr-FR")
    message = ask_for_sign_in(hub, inbox, NOAH, locale="fr")
    assert subject(message) == "Your sign-in link"
    assert message["Content-Language"] == "en"


def test_a_no_account_note_follows_the_page_language(hub: Hub, inbox: Inbox) -> None:
    """The address belongs to nobody, so only the page can say which language to use."""
    message = ask_for_sign_in(hub, inbox, "nobody@example.net", locale="de-AT")
    assert subject(message) == "Ihre Anmeldeanfrage"
    assert "kein Kundenkonto" in text_of(message)


def test_request_mails_reach_a_german_customer_in_german(hub: Hub, inbox: Inbox) -> None:
    """R-DEAD-02: the subject is told of an extension and why, in their language, with
    the new deadline written as German dates are."""
    customer_id = add(hub, MILA, "de-DE")
    with transaction(hub.sessions) as session:
        req = requests.submit(hub, session, type="access", customer_id=customer_id,
                              actor=audit.Actor("customer", customer_id))
    with transaction(hub.sessions) as session:
        extended = requests.extend(hub, session, req["id"], months=2,
                                   reason="Sehr viele Anfragen", actor=ACTOR)
    deliver(hub)
    by_subject = {subject(m): m for m in inbox.to(MILA)}
    assert set(by_subject) == {"Bestätigen Sie Ihre Datenschutzanfrage",
                               "Ihre Datenschutzanfrage braucht mehr Zeit"}
    verify = text_of(by_subject["Bestätigen Sie Ihre Datenschutzanfrage"])
    # R-DSAR-02: the verification mail is the acknowledgement too, with the request's type
    assert "wir haben eine Anfrage (Auskunft) zu den Daten erhalten" in verify
    assert f"Ihre Anfrage: Auskunft. Aktenzeichen: {req['id']}." in verify
    later = text_of(by_subject["Ihre Datenschutzanfrage braucht mehr Zeit"])
    assert "Begründung: Sehr viele Anfragen" in later
    due = extended["due_at"]
    months = ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August",
              "September", "Oktober", "November", "Dezember"]
    day, month, year = int(due[8:10]), months[int(due[5:7]) - 1], due[:4]
    assert f"Die neue Frist endet am {day}. {month} {year}." in later


def test_a_double_opt_in_mail_follows_the_page_the_consent_was_given_on(
        hub: Hub, inbox: Inbox) -> None:
    customer_id = add(hub, LIAM, "en-IE")
    with transaction(hub.sessions) as session:
        purposes.create(session, {"key": "newsletter", "title": "Newsletter",
                                  "legal_basis": "consent", "retention_days": 365,
                                  "description": "Our newsletter",
                                  "data_categories": ["contact data"],
                                  "double_opt_in": True}, actor=ACTOR)
    with transaction(hub.sessions) as session:
        hub.ledger.record(session, customer_id, Decision(
            purpose="newsletter", granted=True, source="portal", locale="de"), actor=ACTOR)
    deliver(hub)
    message = only_mail(inbox, LIAM)
    assert subject(message) == "Bitte bestätigen Sie: Newsletter"
    assert "Der Link ist gültig bis" in text_of(message)


def test_a_double_opt_in_mail_names_the_purpose_in_the_mail_language(
        hub: Hub, inbox: Inbox) -> None:
    """The purpose's own German title in a German mail, chosen when it is sent (from the
    profile here: no page language is known)."""
    customer_id = add(hub, MILA, "de-DE")
    with transaction(hub.sessions) as session:
        purposes.create(session, {"key": "newsletter", "title": "Newsletter and offers",
                                  "legal_basis": "consent", "retention_days": 365,
                                  "description": "Our newsletter",
                                  "translations": {"de": {"title": "Newsletter und Angebote",
                                                          "description": "Unser Newsletter"}},
                                  "data_categories": ["contact data"],
                                  "double_opt_in": True}, actor=ACTOR)
    with transaction(hub.sessions) as session:
        hub.ledger.record(session, customer_id, Decision(
            purpose="newsletter", granted=True, source="api"), actor=ACTOR)
    deliver(hub)
    assert subject(only_mail(inbox, MILA)) == "Bitte bestätigen Sie: Newsletter und Angebote"


def test_the_mailer_reads_address_and_locale_in_one_audited_read(hub: Hub, inbox: Inbox) -> None:
    customer_id = add(hub, MILA, "de-DE")
    ask_for_sign_in(hub, inbox, MILA)
    with hub.sessions() as session:
        reads = audit.entries(session, action="customer.read", customer_id=customer_id)
    assert [(e.actor_type, e.actor_id) for e in reads] == [("job", "mailer")]


def test_a_service_reporting_the_notice_language_shown_sets_the_mail_language(
        hub: Hub) -> None:
    """Through the API there is no page: the language of the notice the service says it
    showed stands for it; the API's default language without a notice says nothing."""
    from privacy_hub.usecases import consents

    fields = {"purpose": "newsletter", "granted": True, "collection_method": "web_form",
              "consent_type": "regular", "language": "de"}
    shown = consents.decision(hub, None, {**fields, "notice_version": "2026-12"},
                              source="shop", gpc=False)
    assert shown.locale == "de"
    unspoken = consents.decision(hub, None, {**fields, "language": "en"}, source="shop",
                                 gpc=False)
    assert unspoken.locale is None


def test_a_request_for_an_unknown_address_tells_only_that_mailbox(
        hub: Hub, inbox: Inbox) -> None:
    """R-DSAR-05: through the worker and a real SMTP server, the address's owner learns
    that no account is held under it and how to ask again; nothing to confirm, no link."""
    add(hub, MILA, "de-DE")
    with transaction(hub.sessions) as session:
        requests.submit(hub, session, type="access", email=NOAH, actor=ACTOR)
    deliver(hub)
    message = only_mail(inbox, NOAH)
    assert subject(message) == "Your privacy request"
    body = text_of(message)
    assert "we hold no customer account under it" in body
    assert "phone number or an order number" in body
    assert "http" not in body
    assert inbox.to(MILA) == []
