"""The mails the law asks for, through the worker and a real SMTP server (aiosmtpd on
loopback), on SQLite and PostgreSQL: the acknowledgement of every data subject request
(R-DSAR-02), the notice of a material purpose change (R-CONSENT-09) and the Art. 14
notice for imported data (R-DEAD-05)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path

import pytest
from sqlalchemy import func, select

import audit
from audit.clock import utcnow
from consent import purposes
from consent.ledger import Decision
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from privacy_hub.importer import import_csv
from privacy_hub.jobs import art14, reconsent
from privacy_hub.jobs.outbox import OutboxJob
from privacy_hub.jobs.worker import Worker
from privacy_hub.models import Art14Notice
from privacy_hub.usecases import checks, requests, subject
from privacy_hub.usecases import purposes as purpose_cases
from privacy_hub.vault.blind_index import normalise_email
from tests.conftest import SEED_EMAIL, SEED_NAME
from tests.hubs import make_hub
from tests.smtp import Inbox, smtp_server, text_of

DPO = audit.Actor("staff", "dpo-1")
SHOP = audit.Actor("system", "shop")
MILA, LIAM = "mila@example.org", "liam@example.org"


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


def add(hub: Hub, email: str, locale: str | None = None) -> str:
    values = {"email": email, **({"locale": locale} if locale else {})}
    with transaction(hub.sessions) as session:
        profile, _ = hub.vault.upsert(session, values, actor=DPO)
    return str(profile["id"])


def deliver(hub: Hub, *, at: datetime | None = None) -> None:
    worker = Worker(hub, clock=(lambda: at) if at else utcnow)
    while worker.run_once():
        pass


def subject_of(message: Message) -> str:
    return str(make_header(decode_header(str(message["Subject"]))))


def mails(inbox: Inbox, address: str, subject_text: str) -> list[Message]:
    return [m for m in inbox.to(address) if subject_of(m) == subject_text]


def audit_details(hub: Hub) -> str:
    """Every audit entry's details, as stored."""
    with hub.sessions() as session:
        return "\n".join(session.scalars(select(audit.AuditEntry.details)))


def hub_logs(caplog: pytest.LogCaptureFixture) -> str:
    """What the hub logged (not the test's SMTP server, which logs what it receives)."""
    return "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail.log"))


def dates(request: dict[str, str]) -> tuple[datetime, datetime]:
    return (datetime.fromisoformat(request["received_at"].replace("Z", "+00:00")),
            datetime.fromisoformat(request["due_at"].replace("Z", "+00:00")))


# -- R-DSAR-02: every request is acknowledged -------------------------------------------------

def test_an_unverified_request_is_acknowledged_with_its_verification_link(
        hub: Hub, inbox: Inbox) -> None:
    """R-DSAR-02: the verification mail names the request's id, type, received and due
    dates (English for an English customer)."""
    customer_id = add(hub, LIAM, "en-IE")
    with transaction(hub.sessions) as session:
        req = requests.submit(hub, session, type="access", customer_id=customer_id, actor=SHOP)
    deliver(hub)
    (message,) = mails(inbox, LIAM, "Confirm your privacy request")
    body = text_of(message)
    received, due = dates(req)
    assert f"Your request: access. Reference: {req['id']}." in body
    assert f"Received on {received:%B} {received.day}, {received.year}." in body
    assert f"We answer it by {due:%B} {due.day}, {due.year} at the latest" in body
    assert f"https://hub.example/requests/{req['id']}/verify?token=" in body


def test_a_portal_request_is_acknowledged_in_the_page_language_without_a_profile_language(
        hub: Hub, inbox: Inbox) -> None:
    """R-DSAR-02: a request the portal session verifies at once gets its own
    acknowledgement; no profile language, so the portal page's (German), dates in German."""
    customer_id = add(hub, MILA)
    with transaction(hub.sessions) as session:
        req = subject.file_request(hub, session, customer_id, "restriction",
                                   {"ground": "accuracy_contested"}, language="de")
    deliver(hub)
    (message,) = mails(inbox, MILA, "Wir haben Ihre Datenschutzanfrage erhalten")
    assert message["Content-Language"] == "de"
    body = text_of(message)
    months = ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August",
              "September", "Oktober", "November", "Dezember"]
    received, due = dates(req)
    assert body.startswith("Guten Tag,")
    assert f"Ihre Anfrage: Einschränkung. Aktenzeichen: {req['id']}." in body
    assert f"Eingegangen am {received.day}. {months[received.month - 1]} {received.year}." in body
    assert f"spätestens bis zum {due.day}. {months[due.month - 1]} {due.year}" in body


def test_the_customer_locale_wins_over_the_page_language(hub: Hub, inbox: Inbox) -> None:
    """R-DSAR-02: the subject's language is their customer locale when it is known."""
    customer_id = add(hub, LIAM, "en-GB")
    with transaction(hub.sessions) as session:
        subject.file_request(hub, session, customer_id, "access", language="de")
    deliver(hub)
    assert mails(inbox, LIAM, "We received your privacy request")
    assert not mails(inbox, LIAM, "Wir haben Ihre Datenschutzanfrage erhalten")


def test_an_erasure_is_acknowledged_although_the_record_is_shredded(
        hub: Hub, inbox: Inbox, caplog: pytest.LogCaptureFixture) -> None:
    """R-DSAR-02: the erasure is carried out in the same transaction, so its
    acknowledgement carries the address sealed in its job; the address is only the
    mail's recipient, never in the audit log or a log line."""
    caplog.set_level(logging.DEBUG)
    customer_id = add(hub, SEED_EMAIL, "de-DE")
    with transaction(hub.sessions) as session:
        req = subject.file_request(hub, session, customer_id, "erasure", language="en")
    deliver(hub)
    (message,) = mails(inbox, SEED_EMAIL, "Wir haben Ihre Datenschutzanfrage erhalten")
    assert f"Ihre Anfrage: Löschung. Aktenzeichen: {req['id']}." in text_of(message)
    assert SEED_EMAIL not in audit_details(hub)
    assert SEED_EMAIL not in hub_logs(caplog)
    with hub.sessions() as session:  # the payload (the address) went with the finished job
        jobs = session.scalars(select(OutboxJob).where(OutboxJob.kind == "mail")).all()
    assert jobs and all(j.payload_ct is None for j in jobs if j.status == "delivered")


def test_a_request_for_an_unknown_address_is_acknowledged_in_its_language(
        hub: Hub, inbox: Inbox) -> None:
    """R-DSAR-02, R-DSAR-05: no customer, so the request's own language (German) decides;
    the no-account mail is the acknowledgement too."""
    with transaction(hub.sessions) as session:
        req = requests.submit(hub, session, type="erasure", email="nobody@example.net",
                              actor=SHOP, language="de-AT")
    deliver(hub)
    (message,) = mails(inbox, "nobody@example.net", "Ihre Datenschutzanfrage")
    body = text_of(message)
    assert "kein Kundenkonto" in body
    assert f"Ihre Anfrage: Löschung. Aktenzeichen: {req['id']}." in body


# -- R-CONSENT-09: a material change is told to those whose consent it invalidates ------------

def _newsletter(hub: Hub, customers: list[str], *, refused: tuple[str, ...] = ()) -> None:
    with transaction(hub.sessions) as session:
        purposes.create(session, {"key": "newsletter", "title": "Newsletter",
                                  "legal_basis": "consent", "retention_days": 365,
                                  "description": "Our weekly newsletter",
                                  "translations": {"de": {"title": "Rundbrief",
                                                          "description": "Wöchentlich"}},
                                  "data_categories": ["contact data"]}, actor=DPO)
    with transaction(hub.sessions) as session:
        for cid in customers:
            hub.ledger.record(session, cid, Decision(purpose="newsletter", granted=True,
                                                     source="portal"), actor=DPO)
        for cid in refused:
            hub.ledger.record(session, cid, Decision(purpose="newsletter", granted=False,
                                                     source="portal"), actor=DPO)


def test_a_material_change_mails_every_customer_it_invalidates_in_batches(
        hub: Hub, inbox: Inbox, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """R-CONSENT-09: five granted customers (queued two at a time), one who refused: five
    mails queued with the change, one audit entry with the count and no ids."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(reconsent, "BATCH", 2)
    granted = [add(hub, f"c{i}@example.org", "en") for i in range(4)]
    granted.append(add(hub, SEED_EMAIL, "de"))
    refusing = add(hub, "no@example.org", "en")
    _newsletter(hub, granted, refused=(refusing,))
    with transaction(hub.sessions) as session:
        answer = purpose_cases.update(session, "newsletter", {
            "description": "Weekly offers, now also by text message", "material": True},
            actor=DPO)
    assert answer["version"] == 2 and answer["notified"] == 5
    with hub.sessions() as session:
        queued = session.scalars(select(OutboxJob.customer_id).where(
            OutboxJob.event_type == "purpose.reconsent")).all()
        (entry,) = audit.entries(session, action="purpose.reconsent_notified")
    assert sorted(queued) == sorted(granted)
    assert json.loads(entry.details) == {"purpose": "newsletter", "version": 2, "notified": 5}
    deliver(hub)
    (english,) = mails(inbox, "c0@example.org", "We changed how we use your data: Newsletter")
    body = text_of(english)
    assert "Weekly offers, now also by text message" in body
    assert "https://hub.example/portal/choices" in body
    assert mails(inbox, SEED_EMAIL, "Wir haben geändert, wie wir Ihre Daten verwenden: Rundbrief")
    assert not inbox.to("no@example.org")
    assert SEED_EMAIL not in audit_details(hub) and SEED_EMAIL not in hub_logs(caplog)
    # the change took effect with the mails: the old consent no longer counts
    assert checks.check(hub, granted[0], "newsletter", actor=SHOP).reason == "reconsent_required"


def test_a_change_that_is_not_material_mails_nobody(hub: Hub, inbox: Inbox) -> None:
    """R-CONSENT-09: only a material change invalidates consent."""
    _newsletter(hub, [add(hub, MILA, "de")])
    with transaction(hub.sessions) as session:
        answer = purpose_cases.update(session, "newsletter", {"title": "Our newsletter"},
                                      actor=DPO)
    assert answer["notified"] == 0 and answer["version"] == 1
    deliver(hub)
    assert not inbox.messages


# -- R-DEAD-05: the Art. 14 notice for imported data -------------------------------------------

def _import(hub: Hub, tmp_path: Path, *, source: str | None) -> str:
    path = tmp_path / "partner.csv"
    path.write_text(f"email,first_name,locale\n{SEED_EMAIL},{SEED_NAME},en\n", encoding="utf-8")
    import_csv(hub, path, source=source)
    with hub.sessions() as session:
        found = hub.vault.find_one(session, "email", normalise_email(SEED_EMAIL))
    assert found is not None
    return str(found.id)


def _offers(hub: Hub) -> None:
    with transaction(hub.sessions) as session:
        purposes.create(session, {"key": "offers", "title": "Offers by email",
                                  "legal_basis": "legitimate_interests", "lia_ref": "LIA-7",
                                  "retention_days": 365, "direct_marketing": True,
                                  "fields": ["email", "first_name"],
                                  "description": "Offers for our customers",
                                  "data_categories": ["contact data"]}, actor=DPO)
        purposes.create(session, {"key": "analytics", "title": "Analytics",
                                  "legal_basis": "legitimate_interests", "lia_ref": "LIA-8",
                                  "retention_days": 365, "fields": ["locale"],
                                  "description": "Counting visits",
                                  "data_categories": ["usage data"]}, actor=DPO)


def test_an_import_from_a_partner_schedules_the_notice_within_a_month(
        hub: Hub, inbox: Inbox, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """R-DEAD-05: import with source=partner -> a notice job due within one month (sent
    after a few days); the mail names the source, the categories held and the purposes,
    and how to object; it is audited without personal data."""
    caplog.set_level(logging.DEBUG)
    _offers(hub)
    before = utcnow()
    customer_id = _import(hub, tmp_path, source="partner")
    after = utcnow()
    with hub.sessions() as session:
        notice = session.get(Art14Notice, customer_id)
        assert notice is not None and notice.source == "partner"
        job = session.get(OutboxJob, notice.job_id)
        (created,) = audit.entries(session, action="customer.created", customer_id=customer_id)
    assert job is not None and job.kind == art14.ART14_NOTICE and job.next_attempt_at
    # due within one calendar month of the import (at most 31 days), sent within days
    assert before <= notice.obtained_at <= after
    assert job.next_attempt_at <= notice.due_at <= notice.obtained_at + timedelta(days=31)
    assert notice.due_at >= notice.obtained_at + timedelta(days=28)
    assert job.next_attempt_at <= after + timedelta(days=7)
    assert json.loads(created.details)["import_source"] == "partner"
    assert json.loads(created.details)["source"] == "import"  # the shape others read stays
    deliver(hub)  # not due yet
    assert not inbox.messages
    deliver(hub, at=job.next_attempt_at + timedelta(seconds=1))
    deliver(hub, at=job.next_attempt_at + timedelta(seconds=2))  # the mail it queued
    (message,) = mails(inbox, SEED_EMAIL, "Where we got your data from")
    body = text_of(message)
    assert "from partner, not from you" in body
    assert "The categories of data we hold about you: Email address, First name, Language." in body
    assert "What we use it for: Analytics, Offers by email." in body
    assert "object at any time" in body
    with hub.sessions() as session:
        assert session.get(Art14Notice, customer_id) is None
        (sent,) = audit.entries(session, action="customer.art14_notified")
    details = json.loads(sent.details)
    assert details["source"] == "partner" and details["trigger"] == "scheduled"
    assert details["categories"] == ["email", "first_name", "locale"]
    assert details["purposes"] == ["analytics", "offers"]
    assert SEED_EMAIL not in audit_details(hub) and SEED_NAME not in audit_details(hub)
    assert SEED_EMAIL not in hub_logs(caplog) and SEED_NAME not in hub_logs(caplog)


def test_a_marketing_check_sends_the_notice_at_once(hub: Hub, inbox: Inbox,
                                                    tmp_path: Path) -> None:
    """R-DEAD-05, Art. 14(3)(b): the first direct-marketing use (a consent check) comes
    before the notice's time: it goes now. A check for another purpose changes nothing."""
    _offers(hub)
    customer_id = _import(hub, tmp_path, source="partner")
    assert checks.check(hub, customer_id, "analytics", actor=SHOP).allowed
    deliver(hub)
    assert not inbox.messages
    assert checks.check(hub, customer_id, "offers", actor=SHOP).allowed
    deliver(hub)
    assert mails(inbox, SEED_EMAIL, "Where we got your data from")
    with hub.sessions() as session:
        (sent,) = audit.entries(session, action="customer.art14_notified")
    assert json.loads(sent.details)["trigger"] == "direct_marketing"


def test_a_marketing_read_sends_the_notice_at_once(hub: Hub, inbox: Inbox,
                                                   tmp_path: Path) -> None:
    """R-DEAD-05: a purpose-bound read (data:read) for a direct-marketing purpose."""
    _offers(hub)
    customer_id = _import(hub, tmp_path, source="partner")
    with transaction(hub.sessions) as session:
        read = checks.read_for_purpose(hub, session, customer_id, "offers", actor=SHOP)
    assert read["data"]["first_name"] == SEED_NAME
    deliver(hub)
    (message,) = mails(inbox, SEED_EMAIL, "Where we got your data from")
    assert "from partner" in text_of(message)
    with hub.sessions() as session:
        assert session.get(Art14Notice, customer_id) is None


def test_an_import_without_a_named_source_schedules_no_notice(hub: Hub, tmp_path: Path) -> None:
    """R-DEAD-05 is about data not obtained from the subject: the shop's own export is."""
    _import(hub, tmp_path, source=None)
    with hub.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Art14Notice)) == 0


def test_an_erased_customer_gets_no_notice(hub: Hub, inbox: Inbox, tmp_path: Path) -> None:
    """The notice is cancelled (and its pending row gone) once the customer is erased."""
    customer_id = _import(hub, tmp_path, source="partner")
    from privacy_hub.usecases import customers

    with transaction(hub.sessions) as session:
        customers.erase(hub, session, customer_id, actor=DPO)
    deliver(hub, at=utcnow() + timedelta(days=4))
    assert not mails(inbox, SEED_EMAIL, "Where we got your data from")
    with hub.sessions() as session:
        assert session.get(Art14Notice, customer_id) is None
        assert not audit.entries(session, action="customer.art14_notified")
