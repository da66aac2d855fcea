"""Appending to the log in the caller's transaction, and reading it back.

``record()`` only validates and queues. The entries are chained by a ``before_commit``
listener that ``install()`` puts on the session factory: it locks the head row, numbers
and hashes the queued entries, inserts them and moves the head, all inside the caller's
transaction. So an entry exists exactly when the change it describes was committed, and
no entry is ever stored unchained (DESIGN.md, "Transactions" and "Audit").

Concurrent writers serialise on the head: ``SELECT ... FOR UPDATE`` on PostgreSQL, the
write lock that ``BEGIN IMMEDIATE`` already holds on SQLite (privacy_hub/db.py). Both rely
on READ COMMITTED semantics on PostgreSQL (its default): under REPEATABLE READ a writer
that waited for the head would fail with a serialisation error instead.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import event, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from audit.chain import GENESIS_HASH, Unchained, canonical_json, checkpoint_message, link_entries
from audit.db import rfc3339, utcnow
from audit.errors import AuditError, AuditNotInstalled, InvalidAuditEntry, PersonalDataInAudit
from audit.models import AuditCheckpoint, AuditEntry, AuditHead

ACTOR_KINDS = frozenset({"system", "staff", "customer", "job", "cli"})
ACTION_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
MAX_DETAILS_BYTES = 4096
PENDING_KEY = "audit.pending"

_MAX_DEPTH = 16

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Actor:
    """Who did it: a kind and a pseudonymous id (a staff id, never an email)."""

    kind: str
    id: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ACTOR_KINDS:
            raise InvalidAuditEntry(f"unknown actor kind {self.kind!r}")
        if self.id is not None:
            _check_id("actor id", self.id, 128)


@dataclass(frozen=True)
class CheckpointSigner:
    """The Ed25519 key that signs checkpoints; ``key_id`` tells verifiers which key."""

    key_id: str
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        if not 0 < len(self.key_id) <= 64:
            raise ValueError("a checkpoint key id is 1 to 64 characters")


@dataclass(frozen=True)
class _Config:
    signer: CheckpointSigner | None
    checkpoint_every: int
    checkpoint_interval: timedelta | None


class _Pending(NamedTuple):
    entry: Unchained
    # The innermost savepoint open when it was recorded (None: the outer transaction),
    # so rolling back a savepoint drops only the entries recorded inside it.
    savepoint: SessionTransaction | None


# Keyed by the Session subclass each sessionmaker makes, which is also what its
# listeners are attached to.
_CONFIGS: weakref.WeakKeyDictionary[type[Session], _Config] = weakref.WeakKeyDictionary()


def install(
    factory: sessionmaker[Session],
    *,
    signer: CheckpointSigner | None = None,
    checkpoint_every: int = 1000,
    checkpoint_interval: timedelta | None = timedelta(minutes=5),
) -> None:
    """Make sessions from ``factory`` chain their queued entries when they commit.

    Installing again on the same factory replaces the settings.
    """
    if checkpoint_every < 1:
        raise ValueError("checkpoint_every must be at least 1")
    if checkpoint_interval is not None and checkpoint_interval <= timedelta(0):
        raise ValueError("checkpoint_interval must be positive or None")
    session_class = factory.class_
    first = session_class not in _CONFIGS
    _CONFIGS[session_class] = _Config(signer, checkpoint_every, checkpoint_interval)
    if first:
        event.listen(factory, "before_commit", _before_commit)
        event.listen(factory, "after_soft_rollback", _after_soft_rollback)
        event.listen(factory, "after_commit", _after_commit)
        event.listen(factory, "after_transaction_end", _after_transaction_end)


def record(
    session: Session,
    *,
    actor: Actor,
    action: str,
    customer_id: str | None = None,
    details: Mapping[str, object] | None = None,
) -> None:
    """Queue an audit entry in the caller's transaction; it is chained when that commits."""
    if _config_for(session) is None:
        raise AuditNotInstalled("this session's factory was not passed to audit.install()")
    if len(action) > 64 or not ACTION_PATTERN.match(action):
        raise InvalidAuditEntry(f"action {action!r} is not like 'consent.granted'")
    if customer_id is not None:
        _check_id("customer id", customer_id, 36)
    details_json = encode_details(details)
    current = session.get_nested_transaction() or session.get_transaction()
    if current is None:
        # Begin now, so that the end of this transaction, however it ends, owns the entry.
        session.begin()
    elif not current.is_active:
        raise AuditError("the transaction is committed or failed; its entries are settled")
    pending: list[_Pending] = session.info.setdefault(PENDING_KEY, [])
    entry = Unchained(actor.kind, actor.id, action, customer_id, details_json)
    pending.append(_Pending(entry, session.get_nested_transaction()))


def encode_details(details: Mapping[str, object] | None) -> str:
    """Canonical JSON of ``details`` after checking they are small, plain and impersonal."""
    value: dict[str, object] = dict(details or {})
    _check_value(value, 0)
    text = canonical_json(value)
    if len(text.encode("utf-8")) > MAX_DETAILS_BYTES:
        raise InvalidAuditEntry(f"details exceed {MAX_DETAILS_BYTES} bytes")
    return text


def _check_id(what: str, value: str, max_len: int) -> None:
    if not value or len(value) > max_len:
        raise InvalidAuditEntry(f"{what} must be 1 to {max_len} characters")
    if "@" in value:
        raise PersonalDataInAudit(f"{what} looks like an email address")


def _check_value(value: object, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise InvalidAuditEntry("details are nested too deeply")
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidAuditEntry("details hold a non-finite number")
        return
    if isinstance(value, str):
        _check_text(value)
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_value(item, depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidAuditEntry("details keys must be strings")
            _check_text(key)
            _check_value(item, depth + 1)
        return
    raise InvalidAuditEntry(f"details hold a {type(value).__name__}, which is not JSON")


def _check_text(text: str) -> None:
    # R-AUD-02: minimal data. An "@" is the one unmistakable sign of an email address.
    if "@" in text:
        raise PersonalDataInAudit("details contain what looks like an email address")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidAuditEntry("details contain text that is not valid Unicode") from None


def _config_for(session: Session) -> _Config | None:
    for cls in type(session).__mro__:
        config = _CONFIGS.get(cls)
        if config is not None:
            return config
    return None


def _before_commit(session: Session) -> None:
    pending: list[_Pending] | None = session.info.get(PENDING_KEY)
    if not pending:
        return  # sessions with nothing to audit take no lock
    config = _config_for(session)
    if config is None:  # uninstalled after record(): keep nothing unchained
        raise AuditNotInstalled("audit entries queued on a session that is not audited")
    # Flush the caller's changes first: flush hooks may record more entries, and the head
    # must be the last lock this transaction takes, or writers holding row locks deadlock.
    session.flush()
    _chain(session, [p.entry for p in pending], config)
    pending.clear()


def _after_soft_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    pending: list[_Pending] | None = session.info.get(PENDING_KEY)
    if not pending:
        return
    # A rollback undoes the database up to the nearest savepoint or the whole transaction.
    boundary = previous_transaction
    while not boundary.nested and boundary.parent is not None:
        boundary = boundary.parent
    if not boundary.nested:
        pending.clear()
        return
    pending[:] = [p for p in pending if not _inside(p.savepoint, boundary)]


def _after_commit(session: Session) -> None:
    pending: list[_Pending] | None = session.info.get(PENDING_KEY)
    if not pending or session.in_nested_transaction():
        return  # after a savepoint, late entries still go out with the outer commit
    # Recorded after the chain was written (a before_commit listener that ran after ours):
    # they cannot join this transaction any more. Loud, since this is a programming error.
    actions = sorted({p.entry.action for p in pending})
    logger.error("audit entries recorded after chaining were dropped: %s", actions)
    pending.clear()


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        # The end of the outer transaction, also by close(): nothing queued outlives it.
        session.info.pop(PENDING_KEY, None)


def _inside(savepoint: SessionTransaction | None, boundary: SessionTransaction) -> bool:
    while savepoint is not None:
        if savepoint is boundary:
            return True
        savepoint = savepoint.parent
    return False


def _chain(session: Session, items: list[Unchained], config: _Config) -> None:
    head_seq, head_hash = _lock_head(session)
    # After the lock, so that on PostgreSQL this statement's snapshot sees the entries
    # of the writer we waited for.
    last_time, last_checkpoint_at = session.execute(
        select(
            select(AuditEntry.recorded_at).where(AuditEntry.seq == head_seq).scalar_subquery(),
            select(AuditCheckpoint.signed_at)
            .order_by(AuditCheckpoint.seq.desc())
            .limit(1)
            .scalar_subquery(),
        )
    ).one()
    now = utcnow()
    # Clocks of several app servers can disagree a little; time never goes back in the chain.
    recorded_at = max(now, last_time) if last_time is not None else now
    links = link_entries(head_hash, head_seq + 1, recorded_at, items)
    session.execute(insert(AuditEntry), [link._asdict() for link in links])
    last = links[-1]
    session.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(seq=last.seq, hash=last.hash)
        .execution_options(synchronize_session=False)
    )
    signer = config.signer
    if signer is None:
        return
    crossed = last.seq // config.checkpoint_every > head_seq // config.checkpoint_every
    stale = config.checkpoint_interval is not None and (
        last_checkpoint_at is None or recorded_at - last_checkpoint_at >= config.checkpoint_interval
    )
    if crossed or stale:
        message = checkpoint_message(last.seq, last.hash, recorded_at)
        signature = signer.private_key.sign(message)
        session.execute(
            insert(AuditCheckpoint).values(
                seq=last.seq,
                hash=last.hash,
                signed_at=recorded_at,
                key_id=signer.key_id,
                signature=base64.urlsafe_b64encode(signature).rstrip(b"=").decode("ascii"),
            )
        )


def _lock_head(session: Session) -> tuple[int, str]:
    locked = select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update()
    row = session.execute(locked).one_or_none()
    if row is None:
        _create_head(session)
        row = session.execute(locked).one()
    return int(row.seq), str(row.hash)


def _create_head(session: Session) -> None:
    values: dict[str, Any] = {"id": 1, "seq": 0, "hash": GENESIS_HASH}
    dialect = session.get_bind(mapper=AuditHead).dialect.name
    # Two first writers may race to create the row; the loser's insert does nothing and
    # its SELECT ... FOR UPDATE then waits for the winner's row.
    if dialect == "postgresql":
        session.execute(
            postgresql.insert(AuditHead)
            .values(values)
            .on_conflict_do_nothing(index_elements=["id"])
        )
    elif dialect == "sqlite":
        session.execute(
            sqlite.insert(AuditHead).values(values).on_conflict_do_nothing(index_elements=["id"])
        )
    else:
        session.execute(insert(AuditHead).values(values))


def entries(
    session: Session,
    *,
    since_seq: int | None = None,
    action: str | None = None,
    customer_id: str | None = None,
    limit: int = 50,
) -> list[AuditEntry]:
    """Entries in ascending seq after ``since_seq``, optionally one action or customer."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    stmt = select(AuditEntry).order_by(AuditEntry.seq).limit(limit)
    if since_seq is not None:
        stmt = stmt.where(AuditEntry.seq > since_seq)
    if action is not None:
        stmt = stmt.where(AuditEntry.action == action)
    if customer_id is not None:
        stmt = stmt.where(AuditEntry.customer_id == customer_id)
    return list(session.scalars(stmt))


def public_entry(entry: AuditEntry) -> dict[str, object]:
    """An entry as the API and exports show it."""
    details: object = json.loads(entry.details)
    return {
        "seq": entry.seq,
        "recorded_at": rfc3339(entry.recorded_at),
        "actor": {"type": entry.actor_type, "id": entry.actor_id},
        "action": entry.action,
        "customer_id": entry.customer_id,
        "details": details,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }
