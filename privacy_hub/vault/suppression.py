"""The suppression list's hashes (R-ERASE-05): the keyed hash of each normalised email and
phone, and the customers made with a listed one.

The hash is HMAC-SHA256 under the hub key ``suppression``, a key of its own: never the
blind-index key, so the list cannot be joined to the customers' blind indexes, and the
full 32 bytes, so a listed identifier matches nobody else (a blind index is truncated
to match several people; a suppression must hit exactly one identifier). What is stored,
matched and lifted, and the flag the gate reads, are consent/suppression.py's.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

import audit
from audit.prepared import Prepared
from consent import suppression

#: the identifiers listed, as the vault normalises them (email: NFKC, trimmed, lower
#: case; phone: E.164)
IDENTIFIERS = ("email", "phone")

# For the create hot path (Vault.create_new): one probe for up to two hashes.
_LISTED_RAW = Prepared(text("SELECT 1 FROM suppression_list "
                            "WHERE identifier_hash = :a OR identifier_hash = :b"))


class SuppressionList:
    """Hashes identifiers for the suppression list and flags customers made with listed ones."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def hashes(self, identifiers: Mapping[str, Any]) -> list[bytes]:
        """The keyed hashes of the (normalised) email and phone among ``identifiers``."""
        return [hmac.new(self._key, f"privacy-hub/suppression|{name}|{value}".encode(),
                         hashlib.sha256).digest()
                for name in IDENTIFIERS if (value := identifiers.get(name))]

    def add(self, session: Session, identifiers: Mapping[str, Any], *, reason: str,
            actor: audit.Actor) -> int:
        """List the customer's email and phone for ``reason`` (before they are erased, or as
        they object to direct marketing). Returns how many entries are new."""
        return suppression.add(session, self.hashes(identifiers), reason=reason, actor=actor)

    def screen(self, session: Session, created: Mapping[str, Mapping[str, Any]], *,
               actor: audit.Actor) -> list[str]:
        """Customers just made ({id: normalised fields}) with a listed identifier are
        flagged (the gate then denies them direct marketing); returns their ids."""
        by_customer = {cid: self.hashes(data) for cid, data in created.items()}
        found = suppression.listed(session, [h for hs in by_customer.values() for h in hs])
        flagged = []
        for cid, hashes in by_customer.items() if found else ():
            reasons = [found[h] for h in hashes if h in found]
            if reasons:
                suppression.apply(session, cid, reasons, actor=actor)
                flagged.append(cid)
        return flagged

    @staticmethod
    def listed_on(cursor: Any, dialect: Any, hashes: Sequence[bytes]) -> bool:
        """Whether any of (at most two) hashes is listed, through a driver cursor."""
        if not hashes:
            return False
        first, second = hashes[0], hashes[-1]
        return _LISTED_RAW.execute(cursor, dialect, {"a": first, "b": second}).fetchone() \
            is not None

    def lift(self, session: Session, customer_id: str, identifiers: Mapping[str, Any], *,
             actor: audit.Actor, consent_event_id: str) -> int:
        """The customer consented to direct marketing themselves: their flag is cleared and
        the entries of their email and phone deleted. Returns how many were deleted."""
        return suppression.lift(session, customer_id, self.hashes(identifiers), actor=actor,
                                consent_event_id=consent_event_id)
