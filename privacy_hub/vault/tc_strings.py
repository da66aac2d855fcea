"""IAB TCF TC strings per customer (R-SIG-03): stored verbatim, sealed, read back, audited.

The hub never makes or changes a TC string: it keeps the one a CMP produced, byte for
byte, under the customer's data key (so crypto-shredding the customer makes it
unreadable, as with their statements and events), beside the core segment's header.
Audit entries name the row, the CMP and its version, never the string. Callers commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import audit
from audit.clock import rfc3339, utcnow
from audit.ids import new_id
from consent.ledger import FUTURE_TOLERANCE
from privacy_hub import tcf
from privacy_hub.vault.errors import CustomerErased, InvalidCustomerData, KeyDestroyed
from privacy_hub.vault.keyring import DataKey
from privacy_hub.vault.models import CustomerTcString
from privacy_hub.vault.service import Vault

TABLE, COLUMN = "customer_tc_strings", "tc_string_ct"


def store(vault: Vault, session: Session, customer_id: str, tc_string: str, *,
          collected_at: datetime | None, actor: audit.Actor) -> dict[str, Any]:
    """Store a CMP's TC string for an active customer, exactly as given; 409
    (CustomerErased) for an erased one, InvalidCustomerData for a bad string."""
    errors: dict[str, list[str]] = {}
    try:
        header = tcf.decode(tc_string)
    except tcf.InvalidTcString as exc:
        errors["tc_string"] = [str(exc)]
    now = utcnow()
    if collected_at is not None and collected_at > now + FUTURE_TOLERANCE:
        errors["collected_at"] = ["lies in the future"]
    if errors:
        raise InvalidCustomerData(errors)
    row = vault.get_row(session, customer_id)
    if row.status == "erased":
        raise CustomerErased(row.id)
    try:
        key = vault.keyring.data_key(session, row.id)
    except KeyDestroyed:  # erased by a concurrent request
        raise CustomerErased(row.id) from None
    record = CustomerTcString(
        id=new_id(), customer_id=row.id, tcf_version=header.version, cmp_id=header.cmp_id,
        cmp_version=header.cmp_version, consent_language=header.consent_language,
        vendor_list_version=header.vendor_list_version,
        tcf_policy_version=header.tcf_policy_version, tc_created_at=header.created,
        tc_updated_at=header.last_updated, collected_at=collected_at, recorded_at=now,
        recorded_by=actor.id or actor.kind, tc_string_ct=b"")
    # The string is base64url, so ASCII: its bytes are the very bytes the CMP sent.
    record.tc_string_ct = key.seal(TABLE, COLUMN, record.id, tc_string.encode("ascii"))
    session.add(record)
    audit.record(session, actor=actor, action="customer.tc_string_recorded",
                 customer_id=row.id, details=_details(record))
    return _public(record, tc_string)


def latest(vault: Vault, session: Session, customer_id: str, *,
           actor: audit.Actor) -> dict[str, Any] | None:
    """The newest stored TC string (audited); None when there is none or the customer was
    erased. CustomerNotFound for an unknown customer."""
    rows = _rows(vault, session, customer_id, newest_first=True, limit=1)
    if not rows:
        return None
    record = rows[0]
    tc_string = _open(vault.keyring.data_key(session, customer_id), record)
    audit.record(session, actor=actor, action="customer.tc_string_read",
                 customer_id=customer_id, details=_details(record))
    return _public(record, tc_string)


def history(vault: Vault, session: Session, customer_id: str, *,
            actor: audit.Actor) -> list[dict[str, Any]]:
    """Every stored TC string, oldest first (audited); empty once the customer was erased."""
    rows = _rows(vault, session, customer_id, newest_first=False)
    if rows is None:
        return []
    items = _opened(vault, session, customer_id, rows)
    audit.record(session, actor=actor, action="customer.tc_string_history_read",
                 customer_id=customer_id, details={"count": len(items)})
    return items


def for_export(vault: Vault, session: Session, customer_id: str) -> list[dict[str, Any]]:
    """Every stored TC string, oldest first, for the subject's own export (not audited
    here: the export is)."""
    rows = _rows(vault, session, customer_id, newest_first=False) or []
    return [{k: v for k, v in item.items() if k != "customer_id"}
            for item in _opened(vault, session, customer_id, rows)]


def _rows(vault: Vault, session: Session, customer_id: str, *, newest_first: bool,
          limit: int | None = None) -> list[CustomerTcString] | None:
    """The customer's rows; None for an erased customer (nothing of theirs is readable)."""
    if vault.get_row(session, customer_id).status == "erased":
        return None
    order = ((CustomerTcString.recorded_at.desc(), CustomerTcString.id.desc()) if newest_first
             else (CustomerTcString.recorded_at, CustomerTcString.id))
    stmt = select(CustomerTcString).where(CustomerTcString.customer_id == customer_id)
    return list(session.scalars(stmt.order_by(*order).limit(limit)).all())


def _opened(vault: Vault, session: Session, customer_id: str,
            rows: list[CustomerTcString]) -> list[dict[str, Any]]:
    if not rows:
        return []
    key = vault.keyring.data_key(session, customer_id)
    return [_public(r, _open(key, r)) for r in rows]


def _open(key: DataKey, record: CustomerTcString) -> str:
    return key.open(TABLE, COLUMN, record.id, record.tc_string_ct).decode("ascii")


def _details(record: CustomerTcString) -> dict[str, object]:
    return {"tc_string_id": record.id, "cmp_id": record.cmp_id,
            "cmp_version": record.cmp_version}


def _public(record: CustomerTcString, tc_string: str) -> dict[str, Any]:
    return {
        "id": record.id, "customer_id": record.customer_id, "tc_string": tc_string,
        "tcf_version": record.tcf_version, "cmp_id": record.cmp_id,
        "cmp_version": record.cmp_version, "consent_language": record.consent_language,
        "vendor_list_version": record.vendor_list_version,
        "tcf_policy_version": record.tcf_policy_version,
        "tc_created_at": rfc3339(record.tc_created_at),
        "tc_updated_at": rfc3339(record.tc_updated_at),
        "collected_at": rfc3339(record.collected_at),
        "recorded_at": rfc3339(record.recorded_at), "recorded_by": record.recorded_by,
    }
