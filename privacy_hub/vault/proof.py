"""Proof of consent under the customer's key (R-CREC-06): consent's ``ProofKeys`` port
(consent/proof.py), and the vault's part in keeping and ending that evidence.

Evidence is sealed into (consent_evidence, evidence_ct, event id, customer id) with the
customer's default data key, like their other cells, so erasing the customer
crypto-shreds it too; the erasure also drops the ciphertext at once (``on_erasure``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Engine, Table, and_, bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

import audit
from audit.clock import utcnow
from audit.prepared import Prepared
from consent import proof
from consent.models import ConsentEvidence, ProcessingFlags
from consent.proof import Open, Seal
from privacy_hub.db import driver_reader, transaction
from privacy_hub.vault.errors import KeyDestroyed
from privacy_hub.vault.keyring import DataKey, KeyRing
from privacy_hub.vault.keystore import DEFAULT_CLASS, CustomerKey
from privacy_hub.vault.models import Customer

_CUSTOMERS = cast(Table, Customer.__table__)
_KEYS = cast(Table, CustomerKey.__table__)
_EVIDENCE = cast(Table, ConsentEvidence.__table__)
# The hot path's one read before a group-committed decision: the customer's status,
# whether a suppression applies to them (R-ERASE-05) and, when the key store shares the
# database and the decision carries evidence, their wrapped key.
_FLAGS = cast(Table, ProcessingFlags.__table__)
_STANDING = _CUSTOMERS.outerjoin(_FLAGS, _FLAGS.c.customer_id == _CUSTOMERS.c.id)
_STATUS_AND_KEY_RAW = Prepared(
    select(_CUSTOMERS.c.status, _FLAGS.c.suppressed, _KEYS.c.dek_version, _KEYS.c.kek_version,
           _KEYS.c.wrapped)
    .select_from(_STANDING.outerjoin(_KEYS, and_(_KEYS.c.customer_id == _CUSTOMERS.c.id,
                                                 _KEYS.c.key_class == DEFAULT_CLASS)))
    .where(_CUSTOMERS.c.id == bindparam("customer_id")))
_STATUS_RAW = Prepared(select(_CUSTOMERS.c.status, _FLAGS.c.suppressed).select_from(_STANDING)
                       .where(_CUSTOMERS.c.id == bindparam("customer_id")))
#: a customer's status and whether a suppression applies to them (None: no such customer)
Standing = tuple[str, bool] | None
_BATCH = 500
_SYSTEM = audit.Actor("system", "consent-proof")


def _sealer(key: DataKey) -> Seal:
    return lambda event_id, raw: key.seal(proof.TABLE, proof.COLUMN, event_id, raw)


def _opener(key: DataKey) -> Open:
    return lambda event_id, blob: key.open(proof.TABLE, proof.COLUMN, event_id, blob)


class ProofVault:
    """Seals and opens consent evidence with the customer's data key."""

    def __init__(self, keyring: KeyRing, *, shared_keystore: bool) -> None:
        self.keyring = keyring
        #: the key store is in the main database: the hot path reads key and status at once
        self.shared_keystore = shared_keystore

    # -- consent's ProofKeys --------------------------------------------------------
    def sealer(self, session: Session, customer_id: str) -> Seal | None:
        try:
            return _sealer(self.keyring.data_key(session, customer_id))
        except KeyDestroyed:
            return None

    def opener(self, session: Session, customer_id: str) -> Open | None:
        try:
            return _opener(self.keyring.data_key(session, customer_id))
        except KeyDestroyed:
            return None

    # -- the hot path ---------------------------------------------------------------
    def standing_and_sealer(self, engine: Engine, customer_id: str, *, key: bool
                            ) -> tuple[Standing, Seal | None]:
        """The customer's standing and, with ``key``, a sealer with their key, in one read
        outside any transaction; the sealer is None when that cannot be had so (a key
        store of its own, a key-encryption key not loaded here, no key): the decision then
        takes the session's path."""
        with driver_reader(engine) as (cursor, dialect):
            if not (key and self.shared_keystore):
                row = _STATUS_RAW.execute(cursor, dialect, {"customer_id": customer_id}
                                          ).fetchone()
                return (None if row is None else (row[0], bool(row[1]))), None
            found = _STATUS_AND_KEY_RAW.execute(cursor, dialect,
                                                {"customer_id": customer_id}).fetchone()
        if found is None:
            return None, None
        status, suppressed, dek_version, kek_version, wrapped = found
        standing = (status, bool(suppressed))
        if wrapped is None:
            return standing, None
        data_key = self.keyring.unwrap_row(customer_id, DEFAULT_CLASS, dek_version,
                                           kek_version, wrapped)
        return standing, None if data_key is None else _sealer(data_key)

    # -- erasure and retention ------------------------------------------------------
    def on_erasure(self, session: Session, customer_id: str) -> None:
        """Vault erasure hook: the customer's evidence goes with their key, at once."""
        proof.purge_customer(session, customer_id, utcnow(), actor=_SYSTEM)

    def purge_erased(self, session: Session, now: datetime, *, actor: audit.Actor) -> int:
        """Evidence still held for customers erased since (a decision that raced their
        erasure): purged as the erasure would have. Returns how many."""
        ids = session.scalars(
            select(ConsentEvidence.customer_id).distinct()
            .join(Customer, Customer.id == ConsentEvidence.customer_id)
            .where(Customer.status == "erased", ConsentEvidence.purged_at.is_(None))
            .limit(_BATCH)).all()
        return sum(proof.purge_customer(session, cid, now, actor=actor) for cid in ids)

    # -- evidence recorded before revision 0019 --------------------------------------
    def seal_legacy(self, factory: sessionmaker[Session]) -> int:
        """Seal the evidence the 0019 migration moved out of the ledger in clear, in
        batches, each its own transaction (audited: counts only). Returns how many."""
        total = 0
        while True:
            with transaction(factory) as session:
                done = self._seal_batch(session)
            if not done:
                return total
            total += done

    def _seal_batch(self, session: Session) -> int:
        rows = session.execute(
            select(ConsentEvidence.event_id, ConsentEvidence.customer_id,
                   ConsentEvidence.legacy_json)
            .where(ConsentEvidence.legacy_json.is_not(None))
            .order_by(ConsentEvidence.event_id).limit(_BATCH)).all()
        sealed = 0
        for customer_id, batch in _by_customer(rows):
            seal = self.sealer(session, customer_id)
            if seal is None:  # erased: nothing of theirs may stay readable
                proof.purge_customer(session, customer_id, utcnow(), actor=_SYSTEM)
                continue
            for event_id, legacy in batch:
                raw = proof.canonical(_loads(legacy))
                result = session.execute(
                    update(_EVIDENCE)
                    .where(_EVIDENCE.c.event_id == event_id,
                           _EVIDENCE.c.legacy_json.is_not(None))
                    .values(evidence_ct=seal(event_id, raw), legacy_json=None)
                    .execution_options(synchronize_session=False))
                sealed += int(result.rowcount)  # type: ignore[attr-defined]
        if sealed:
            audit.record(session, actor=_SYSTEM, action="consent.evidence_sealed",
                         details={"events": sealed, "revision": "0019"})
        return len(rows)


def _by_customer(rows: Any) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    groups: dict[str, list[tuple[str, str]]] = {}
    for event_id, customer_id, legacy in rows:
        groups.setdefault(customer_id, []).append((event_id, legacy))
    yield from groups.items()


def _loads(legacy: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(legacy)  # the migration moved JSON objects only
    return value
