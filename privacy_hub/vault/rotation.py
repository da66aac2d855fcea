"""Key rotation without downtime: a new primary key-encryption key, every wrapped key
re-wrapped under it in batches, then the old versions retired and destroyed.

Reads keep working throughout: an old version still unwraps until the last step.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from audit.clock import utcnow
from privacy_hub.vault import crypto
from privacy_hub.vault.errors import DecryptionError
from privacy_hub.vault.keks import KeyEncryptionKeys
from privacy_hub.vault.keystore import CustomerKey, HubKey, KeyEncryptionKey, dek_aad, hub_aad


def rotate(keks: KeyEncryptionKeys, factory: sessionmaker[Session], *, batch_size: int = 500,
           progress: Callable[[int, int], None] | None = None) -> int:
    """Add a new primary key-encryption key, re-wrap every key under it in batches,
    then retire and destroy the old versions. Returns how many customer keys moved."""
    with factory.begin() as session:
        current = session.scalar(select(func.max(KeyEncryptionKey.version))) or 0
        new_version = current + 1
        session.execute(update(KeyEncryptionKey).where(KeyEncryptionKey.state == "primary")
                        .values(state="active"))
        keks.add(session, new_version, "primary")
    total = 0
    with factory() as session:
        remaining = session.scalar(select(func.count()).select_from(CustomerKey)
                                   .where(CustomerKey.kek_version != new_version)) or 0
    while True:
        with factory.begin() as session:
            done = _rewrap_customer_keys(keks, session, new_version, batch_size)
        total += done
        if progress:
            progress(total, remaining)
        if done == 0:
            break
    with factory.begin() as session:
        for row in session.scalars(select(HubKey).where(HubKey.kek_version != new_version)):
            raw = crypto.unwrap(keks.get(session, row.kek_version), row.wrapped,
                                hub_aad(row.name, row.kek_version))
            new_kek = keks.get(session, new_version)
            row.wrapped = crypto.wrap(new_kek, raw, hub_aad(row.name, new_version))
            row.kek_version = new_version
    with factory.begin() as session:
        old = session.scalars(
            select(KeyEncryptionKey).where(KeyEncryptionKey.version != new_version,
                                           KeyEncryptionKey.state != "retired")
            .with_for_update()
        ).all()
        # Keys wrapped concurrently under an old version while we worked are re-wrapped
        # here, under the lock, before that version is destroyed.
        total += _rewrap_customer_keys(keks, session, new_version, None)
        for kek_row in old:
            kek_row.state = "retired"
            kek_row.wrapped = None
            kek_row.retired_at = utcnow()
    keks.forget_all_but(new_version)
    return total


def _rewrap_customer_keys(keks: KeyEncryptionKeys, session: Session, new_version: int,
                          limit: int | None) -> int:
    """Re-wrap up to ``limit`` (None: all) customer keys not yet under ``new_version``."""
    stmt = select(CustomerKey).where(CustomerKey.kek_version != new_version)
    if limit is not None:
        stmt = stmt.limit(limit).with_for_update(skip_locked=True)
    rows = session.scalars(stmt).all()
    new_kek = keks.get(session, new_version)
    for row in rows:
        old_kek = keks.get(session, row.kek_version)
        try:
            raw = crypto.unwrap(old_kek, row.wrapped, dek_aad(
                row.customer_id, row.key_class, row.dek_version, row.kek_version))
        except DecryptionError:
            raise DecryptionError(
                f"data key of customer {row.customer_id} does not authenticate"
            ) from None
        row.wrapped = crypto.wrap(new_kek, raw, dek_aad(
            row.customer_id, row.key_class, row.dek_version, new_version))
        row.kek_version = new_version
    session.flush()
    return len(rows)
