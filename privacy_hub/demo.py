"""Demo data for `privacy-hub init --demo`: a few customers and a system with every scope."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

import audit
from consent.catalogue import ECOMMERCE
from consent.errors import UnknownPurpose
from privacy_hub.hub import Hub
from privacy_hub.staff.accounts import Enrolment
from privacy_hub.systems import SCOPES
from privacy_hub.usecases import consents, customers, purposes, staff, systems
from privacy_hub.usecases.errors import NotFound

DEMO_SYSTEM = "demo-crm"
DEMO_CUSTOMERS: list[dict[str, Any]] = [
    {"external_id": "shop-1001", "email": "mila.weber@example.com", "first_name": "Mila",
     "last_name": "Weber", "phone": "+4915111111111", "locale": "de-DE",
     "address": {"line1": "Hauptstraße 1", "postal_code": "10115", "city": "Berlin", "country": "DE"}},
    {"external_id": "shop-1002", "email": "noah.martin@example.com", "first_name": "Noah",
     "last_name": "Martin", "locale": "fr-FR",
     "address": {"line1": "12 rue de la Paix", "postal_code": "75002", "city": "Paris", "country": "FR"}},
    {"external_id": "shop-1003", "email": "sofia.rossi@example.com", "first_name": "Sofia",
     "last_name": "Rossi", "locale": "it-IT", "birth_date": "1990-04-12"},
    {"external_id": "shop-1004", "email": "liam.oconnor@example.com", "first_name": "Liam",
     "last_name": "O'Connor", "locale": "en-IE", "attributes": {"loyalty_tier": "gold"}},
]
ACTOR = audit.Actor("cli", "demo")
DEMO_NOTICE_VERSION = "2026-12"
DEMO_NOTICES = {
    "en": ("Example Shop GmbH, Example Street 1, 10115 Berlin, processes your personal data to "
           "run the shop, and with your consent for the purposes you choose in the privacy "
           "portal. You can withdraw any consent at any time, as easily as you gave it. You "
           "have the rights of access, rectification, erasure, restriction, portability and "
           "objection, and may complain to a supervisory authority. Contact: "
           "privacy@shop.example."),
    "de": ("Die Example Shop GmbH, Example Street 1, 10115 Berlin, verarbeitet Ihre "
           "personenbezogenen Daten, um den Shop zu betreiben, und mit Ihrer Einwilligung für "
           "die Zwecke, die Sie im Datenschutzportal wählen. Sie können jede Einwilligung "
           "jederzeit so einfach widerrufen, wie Sie sie erteilt haben. Sie haben das Recht "
           "auf Auskunft, Berichtigung, Löschung, Einschränkung, Datenübertragbarkeit und "
           "Widerspruch und können sich bei einer Aufsichtsbehörde beschweren. Kontakt: "
           "privacy@shop.example."),
}


def install_demo(hub: Hub, session: Session) -> tuple[str, bool]:
    """Add the demo system and customers; on an existing demo, issue a fresh key.

    Returns the demo system's API key and whether the demo data was new.
    """
    try:
        systems.get(session, DEMO_SYSTEM)
    except NotFound:
        pass
    else:
        return systems.rotate_key(hub, session, DEMO_SYSTEM, actor=ACTOR), False
    api_key = systems.register(hub, session, name=DEMO_SYSTEM, scopes=SCOPES,
                               actor=ACTOR)["api_key"]
    for entry in ECOMMERCE:
        try:
            purposes.get(session, entry["key"])
        except UnknownPurpose:
            purposes.create(session, entry, actor=ACTOR)
    for language, text in DEMO_NOTICES.items():
        purposes.publish_notice(session, version=DEMO_NOTICE_VERSION, language=language,
                                text=text, actor=ACTOR)
    session.flush()
    ids = [customers.create_or_update(hub, session, customer, actor=ACTOR)[0]["id"]
           for customer in DEMO_CUSTOMERS]
    # A few decisions, so the gate has something to say from the start.
    decisions = [(ids[0], "marketing.email", True), (ids[0], "analytics.behaviour", True),
                 (ids[1], "personalisation.recommendations", True),
                 (ids[1], "marketing.sms", False), (ids[2], "analytics.behaviour", True)]
    for cid, purpose, granted in decisions:
        consents.record(hub, session, cid, {"purpose": purpose, "granted": granted,
                                            "collection_method": "web_form", "language": "en",
                                            "consent_type": "regular"},
                        actor=ACTOR, source="demo", gpc=False, customer_checked=True)
    return api_key, True


DEMO_DPO_EMAIL = "dpo@example.com"
#: printed by `make run`; a demo instance's password, never a real one
DEMO_DPO_PASSWORD = "demo-dpo-password"  # noqa: S105 - the demo's, printed by design


def install_demo_staff(hub: Hub, session: Session) -> Enrolment | None:
    """The demo DPO, with a new authenticator while they have not signed in yet (so each
    `init --demo` can print a secret that works); None once they have enrolled."""
    try:
        member = staff.get(hub, session, DEMO_DPO_EMAIL)
    except NotFound:
        return staff.create(hub, session, email=DEMO_DPO_EMAIL, role="dpo",
                            password=DEMO_DPO_PASSWORD, actor=ACTOR)[1]
    if member["enrolled"] or not member["active"]:
        return None
    return staff.reset_second_factor(hub, session, DEMO_DPO_EMAIL, actor=ACTOR)
