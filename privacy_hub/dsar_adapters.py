"""The vault and the outbox as data subject requests need them (dsar/ports.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.orm import Session

import audit
from privacy_hub import outbox
from privacy_hub.hub import Hub
from privacy_hub.vault import crypto
from privacy_hub.vault.blind_index import NormalisationError, normalise_email
from privacy_hub.vault.errors import CustomerNotFound


class VaultDirectory:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def find_by_email(self, session: Session, email: str) -> str | None:
        try:
            normalised = normalise_email(email)
        except NormalisationError:
            return None
        row = self.hub.vault.find_one(session, "email", normalised)
        return row.id if row is not None and row.status != "erased" else None

    def is_active(self, session: Session, customer_id: str) -> bool:
        try:
            return self.hub.vault.get_row(session, customer_id).status != "erased"
        except CustomerNotFound:
            return False

    def rectify(self, session: Session, customer_id: str, changes: Mapping[str, Any], *,
                actor: audit.Actor) -> list[str]:
        self.hub.vault.rectify(session, customer_id, changes, actor=actor)
        return sorted(changes)

    def _app_aead(self, session: Session) -> AESGCM:
        return AESGCM(self.hub.keyring.hub_key(session, "app_secrets"))

    def seal(self, session: Session, customer_id: str | None, label: str, data: bytes) -> bytes:
        if customer_id is not None:
            key = self.hub.keyring.data_key(session, customer_id)
            return key.seal("requests", "details_ct", label, data)
        return crypto.wrap(self._app_aead(session), data, label.encode())

    def open(self, session: Session, customer_id: str | None, label: str, blob: bytes) -> bytes:
        if customer_id is not None:
            return self.hub.keyring.data_key(session, customer_id).open(
                "requests", "details_ct", label, blob)
        return crypto.unwrap(self._app_aead(session), blob, label.encode())


class OutboxNotifier:
    def verification_link(self, session: Session, *, request_id: str, customer_id: str | None,
                          address: str | None, token: str) -> None:
        if customer_id is None and address is None:
            return
        outbox.enqueue_mail(session, template="request_verification", customer_id=customer_id,
                            to_staff=None if customer_id else address,
                            data={"request_id": request_id, "request_type": "privacy"},
                            secrets={"token": token})

    def tell_subject(self, session: Session, *, request_id: str, customer_id: str | None,
                     template: str, data: Mapping[str, str]) -> None:
        if customer_id is None:
            return  # nobody identified, no address kept: nothing to send to
        outbox.enqueue_mail(session, template=template, customer_id=customer_id,
                            data={"request_id": request_id, **data})
