"""Reading customers: a row by id, its decrypted profile, and audited reads.

The base of privacy_hub/vault/service.py's Vault, and of its parts (identifiers,
statements, legal retention) that read customers too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import audit
from audit.clock import rfc3339
from consent import flags
from privacy_hub.vault.blind_index import BlindIndexer
from privacy_hub.vault.cells import TABLE, decode_value
from privacy_hub.vault.errors import CustomerNotFound
from privacy_hub.vault.keyring import KeyRing
from privacy_hub.vault.models import PERSONAL_FIELDS, Customer


@dataclass
class CustomerRecords:
    """The customers' rows and their decrypted profiles."""

    keyring: KeyRing
    indexer: BlindIndexer

    def get_row(self, session: Session, customer_id: str, *, for_update: bool = False) -> Customer:
        """The customer's row (locked for update if asked); CustomerNotFound if none."""
        stmt = select(Customer).where(Customer.id == customer_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = session.scalars(stmt).first()
        if row is None:
            raise CustomerNotFound(customer_id)
        return row

    @staticmethod
    def status(session: Session, row: Customer) -> str:
        """The customer's status as shown: active, restricted (Art. 18) or erased."""
        return flags.status_of(session, row.id, row.status)

    def profile(self, session: Session, row: Customer,
                only: Sequence[str] | None = None) -> dict[str, Any]:
        """The decrypted profile (or the tombstone of an erased customer)."""
        base: dict[str, Any] = {"id": row.id, "status": self.status(session, row),
                                "created_at": rfc3339(row.created_at),
                                "updated_at": rfc3339(row.updated_at)}
        if row.status == "erased":
            return {"id": row.id, "status": "erased", "erased_at": rfc3339(row.erased_at)}
        key = self.keyring.data_key(session, row.id)
        for name in PERSONAL_FIELDS:
            if only is not None and name not in only:
                continue
            blob = getattr(row, f"{name}_ct")
            base[name] = None if blob is None else decode_value(
                name, key.open(TABLE, f"{name}_ct", row.id, blob))
        return base

    def read(self, session: Session, customer_id: str, *, actor: audit.Actor,
             purpose: str | None = None, only: Sequence[str] | None = None) -> dict[str, Any]:
        """Read a customer (audited)."""
        row = self.get_row(session, customer_id)
        details: dict[str, object] = {"fields": sorted(only) if only is not None else "all"}
        if purpose:
            details["purpose"] = purpose
        audit.record(session, actor=actor, action="customer.read", customer_id=row.id,
                     details=details)
        return self.profile(session, row, only)
