"""Supplementary statements (Art. 16): a customer's own words attached to their data,
sealed under their data key like every other personal field."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import audit
from audit.clock import rfc3339, utcnow
from audit.ids import new_id
from privacy_hub.vault.errors import CustomerErased, InvalidCustomerData
from privacy_hub.vault.models import PERSONAL_FIELDS, CustomerStatement
from privacy_hub.vault.records import CustomerRecords

_TABLE = "customer_statements"
_COLUMN = "text_ct"


class SupplementaryStatements(CustomerRecords):
    """Adding and reading supplementary statements (Vault's part)."""

    def add_statement(self, session: Session, customer_id: str, text: str, *,
                      concerns: Sequence[str] = (), actor: audit.Actor) -> dict[str, Any]:
        """Attach a supplementary statement (Art. 16) to an active customer. Callers
        commit. The audit entry names the statement and fields, never the text."""
        row = self.get_row(session, customer_id)
        if row.status == "erased":
            raise CustomerErased(row.id)
        unknown = sorted(set(concerns) - set(PERSONAL_FIELDS))
        if unknown:
            raise InvalidCustomerData({"concerns": [f"not a customer field: {n}"
                                                    for n in unknown]})
        statement = CustomerStatement(
            id=new_id(), customer_id=row.id, fields=",".join(sorted(set(concerns))) or None,
            added_at=utcnow(), added_by=f"{actor.kind}:{actor.id or '-'}", text_ct=b"")
        statement.text_ct = self.keyring.data_key(session, row.id).seal(
            _TABLE, _COLUMN, statement.id, text.encode())
        session.add(statement)
        audit.record(session, actor=actor, action="customer.statement_added",
                     customer_id=row.id,
                     details={"statement_id": statement.id, "fields": sorted(set(concerns))})
        return _public(statement, text)

    def statements(self, session: Session, customer_id: str) -> list[dict[str, Any]]:
        """The customer's supplementary statements, oldest first, decrypted (not audited:
        callers that show them to anyone audit the read)."""
        rows = session.scalars(select(CustomerStatement)
                               .where(CustomerStatement.customer_id == customer_id)
                               .order_by(CustomerStatement.added_at, CustomerStatement.id)).all()
        if not rows:
            return []
        key = self.keyring.data_key(session, customer_id)
        return [_public(r, key.open(_TABLE, _COLUMN, r.id, r.text_ct).decode()) for r in rows]


def _public(row: CustomerStatement, text: str) -> dict[str, Any]:
    return {"id": row.id, "customer_id": row.customer_id,
            "concerns": row.fields.split(",") if row.fields else [], "text": text,
            "added_at": rfc3339(row.added_at), "added_by": row.added_by}
