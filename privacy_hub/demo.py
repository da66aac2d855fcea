"""Demo data for `privacy-hub init --demo`: a few customers and a system with every scope."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import audit
from privacy_hub.hub import Hub
from privacy_hub.models import System
from privacy_hub.systems import SCOPES

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


def install_demo(hub: Hub, session: Session) -> tuple[str, bool]:
    """Add the demo system and customers; on an existing demo, issue a fresh key.

    Returns the demo system's API key and whether the demo data was new.
    """
    if session.scalar(select(System.id).where(System.name == DEMO_SYSTEM)):
        return hub.systems.rotate_key(session, DEMO_SYSTEM, actor=ACTOR), False
    _, api_key, _ = hub.systems.create(session, name=DEMO_SYSTEM, scopes=list(SCOPES),
                                       actor=ACTOR)
    for customer in DEMO_CUSTOMERS:
        hub.vault.upsert(session, customer, actor=ACTOR)
    return api_key, True
