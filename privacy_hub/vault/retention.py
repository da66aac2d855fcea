"""Data kept under a legal duty after erasure (Art. 17(3)(b)): copied before the
crypto-shred under the customer's legal-retention key, destroyed when the hold ends."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

import audit
from audit.clock import rfc3339, utcnow
from audit.ids import new_id
from privacy_hub.vault.errors import KeyDestroyed
from privacy_hub.vault.keystore import LEGAL_RETENTION_CLASS
from privacy_hub.vault.models import RetainedRecord
from privacy_hub.vault.records import CustomerRecords


class LegalRetention(CustomerRecords):
    """Retaining fields under a legal hold, and purging them when it ends (Vault's part)."""

    def retain(self, session: Session, customer_id: str, *, purpose: str, legal_basis: str,
               fields: Sequence[str], hold_until: datetime, actor: audit.Actor) -> list[str]:
        """Before erasure: copy the fields a legal duty requires us to keep under the
        customer's legal-retention key, until ``hold_until``. Returns the fields kept."""
        row = self.get_row(session, customer_id)
        profile = self.profile(session, row, only=list(fields))
        kept = {k: v for k, v in profile.items() if k in fields and v is not None}
        if not kept:
            return []
        try:
            key = self.keyring.data_key(session, customer_id, LEGAL_RETENTION_CLASS)
        except KeyDestroyed:
            key = self.keyring.new_data_key(session, customer_id, LEGAL_RETENTION_CLASS)
        record_id = new_id()
        session.add(RetainedRecord(
            id=record_id, customer_id=customer_id, purpose=purpose, legal_basis=legal_basis,
            hold_until=hold_until, created_at=utcnow(),
            fields_ct=key.seal("retained_records", "fields_ct", record_id,
                               json.dumps(kept, sort_keys=True).encode())))
        audit.record(session, actor=actor, action="customer.retained", customer_id=customer_id,
                     details={"purpose": purpose, "fields": sorted(kept),
                              "hold_until": rfc3339(hold_until)})
        return sorted(kept)

    def purge_retained(self, session: Session, now: datetime, *, actor: audit.Actor) -> int:
        """Destroy retained data whose hold has ended (and its key once nothing is held)."""
        due = session.scalars(select(RetainedRecord).where(RetainedRecord.hold_until <= now)).all()
        customers = {r.customer_id for r in due}
        for record in due:
            session.delete(record)
        session.flush()
        for customer_id in customers:
            still = session.scalar(select(RetainedRecord.id).where(
                RetainedRecord.customer_id == customer_id).limit(1))
            if still is None:
                self.keyring.destroy_data_key(session, customer_id, LEGAL_RETENTION_CLASS)
            audit.record(session, actor=actor, action="customer.retention_ended",
                         customer_id=customer_id, details={"key_destroyed": still is None})
        return len(due)
