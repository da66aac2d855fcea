"""Appending to the chain under the lock on its head, inside the caller's transaction.

``append`` locks the head row, numbers and hashes the entries, inserts them, moves the
head and, when one is due, writes a signed checkpoint. Concurrent writers serialise on the
head: ``SELECT ... FOR UPDATE`` on PostgreSQL, the write lock that ``BEGIN IMMEDIATE``
already holds on SQLite (privacy_hub/db.py). Both rely on READ COMMITTED semantics on
PostgreSQL (its default): under REPEATABLE READ a writer that waited for the head would
fail with a serialisation error instead. The head row also holds the last entry's time and
the last checkpoint's, so one locking read is all a writer needs; the rest is prebuilt
statements on the session's connection, the fewest round trips while the head is locked.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Table, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from audit.chain import GENESIS_HASH, Link, Unchained, checkpoint_message, link_entries
from audit.clock import utcnow
from audit.errors import AuditError
from audit.insert import insert_links
from audit.models import AuditCheckpoint, AuditEntry, AuditHead
from audit.prepared import Prepared, driver_cursor, time_reader


@dataclass(frozen=True)
class CheckpointSigner:
    """The Ed25519 key that signs checkpoints; ``key_id`` tells verifiers which key."""

    key_id: str
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        if not 0 < len(self.key_id) <= 64:
            raise ValueError("a checkpoint key id is 1 to 64 characters")

    def sign(self, message: bytes) -> str:
        """The signature of ``message``, base64url without padding, as in JWS."""
        signature = self.private_key.sign(message)
        return base64.urlsafe_b64encode(signature).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Checkpoints:
    """When a signed checkpoint is written: every N entries or T since the last one."""

    signer: CheckpointSigner | None
    every: int
    interval: timedelta | None


# Built once: executing a prebuilt statement again costs no SQL compilation and no cache
# key, and going through the Connection skips the ORM's execution path (measured: about a
# third of a request's CPU went into chaining through the ORM).
_HEAD = cast(Table, AuditHead.__table__)
_ENTRIES = cast(Table, AuditEntry.__table__)
_CHECKPOINTS = cast(Table, AuditCheckpoint.__table__)
_READ_HEAD = Prepared(
    select(_HEAD.c.seq, _HEAD.c.hash, _HEAD.c.recorded_at, _HEAD.c.checkpoint_at)
    .where(_HEAD.c.id == 1)
    .with_for_update()
)
_INSERT_CHECKPOINT = Prepared(insert(_CHECKPOINTS))
_MOVE_HEAD_STMT = (
    update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values({name: bindparam(f"h_{name}", type_=_HEAD.c[name].type)
             for name in ("seq", "hash", "recorded_at", "checkpoint_at")})
)
_MOVE_HEAD = Prepared(_MOVE_HEAD_STMT)
# PostgreSQL: the entry and the head's move in one statement, so the head stays locked for
# one round trip less.
_MOVE_HEAD_WITH_ENTRY = Prepared(_MOVE_HEAD_STMT.add_cte(
    insert(_ENTRIES)
    .values({c.name: bindparam(f"e_{c.name}", type_=c.type) for c in _ENTRIES.c})
    .cte("new_entry")
))


def append(conn: Connection, items: list[Unchained], checkpoints: Checkpoints) -> None:
    """Chain ``items`` after the head, in ``conn``'s transaction (the head stays locked)."""
    # Through the driver, with statements compiled once: the chain runs while the head is
    # locked, so its statements' cost is paid by every writer waiting for it.
    dialect = conn.dialect
    cursor = driver_cursor(conn)
    # The locking read returns all that appending needs: PostgreSQL's SELECT ... FOR
    # UPDATE also makes this statement's snapshot see the entries of the writer we
    # waited for.
    head_seq, head_hash, last_time, last_checkpoint_at = lock(conn, cursor)
    if last_time is None and head_seq:
        # A head written before it kept the time (migration 0005 fills it in).
        last_time = conn.scalar(
            select(_ENTRIES.c.recorded_at).where(_ENTRIES.c.seq == head_seq))
    now = utcnow()
    # Clocks of several app servers can disagree a little; time never goes back in the chain.
    recorded_at = max(now, last_time) if last_time is not None else now
    links = link_entries(head_hash, head_seq + 1, recorded_at, items)
    last = links[-1]
    checkpoint = _checkpoint(checkpoints, head_seq, last, recorded_at, last_checkpoint_at)
    head = {
        "h_seq": last.seq,
        "h_hash": last.hash,
        "h_recorded_at": recorded_at,
        "h_checkpoint_at": recorded_at if checkpoint is not None else last_checkpoint_at,
    }
    if len(links) == 1 and dialect.name == "postgresql":
        entry = {f"e_{name}": value for name, value in links[0]._asdict().items()}
        _MOVE_HEAD_WITH_ENTRY.execute(cursor, dialect, {**head, **entry})
    else:
        insert_links(conn, links, cursor)
        _MOVE_HEAD.execute(cursor, dialect, head)
    if checkpoint is not None:
        _INSERT_CHECKPOINT.execute(cursor, dialect, checkpoint)


def _checkpoint(
    checkpoints: Checkpoints,
    head_seq: int,
    last: Link,
    recorded_at: datetime,
    last_checkpoint_at: datetime | None,
) -> dict[str, object] | None:
    """The checkpoint row to write with these links, if one is due."""
    signer = checkpoints.signer
    if signer is None:
        return None
    crossed = last.seq // checkpoints.every > head_seq // checkpoints.every
    stale = checkpoints.interval is not None and (
        last_checkpoint_at is None or recorded_at - last_checkpoint_at >= checkpoints.interval
    )
    if not (crossed or stale):
        return None
    return {
        "seq": last.seq,
        "hash": last.hash,
        "signed_at": recorded_at,
        "key_id": signer.key_id,
        "signature": signer.sign(checkpoint_message(last.seq, last.hash, recorded_at)),
    }


def lock(conn: Connection, cursor: Any = None
         ) -> tuple[int, str, datetime | None, datetime | None]:
    """The head's seq, hash, last entry time and last checkpoint time, locked."""
    dialect = conn.dialect
    if cursor is None:
        cursor = driver_cursor(conn)
    row = _READ_HEAD.execute(cursor, dialect, {}).fetchone()
    if row is None:
        _create_head(conn)
        row = _READ_HEAD.execute(cursor, dialect, {}).fetchone()
        if row is None:  # pragma: no cover - created just above
            raise AuditError("the audit head could not be created")
    seq, hash_, recorded_at, checkpoint_at = row
    read_time = time_reader(dialect)
    return int(seq), str(hash_), read_time(recorded_at), read_time(checkpoint_at)


def _create_head(conn: Connection) -> None:
    values: dict[str, Any] = {"id": 1, "seq": 0, "hash": GENESIS_HASH}
    dialect = conn.dialect.name
    # Two first writers may race to create the row; the loser's insert does nothing and
    # its SELECT ... FOR UPDATE then waits for the winner's row.
    if dialect == "postgresql":
        conn.execute(
            postgresql.insert(AuditHead).values(values).on_conflict_do_nothing(index_elements=["id"])
        )
    elif dialect == "sqlite":
        conn.execute(
            sqlite.insert(AuditHead).values(values).on_conflict_do_nothing(index_elements=["id"])
        )
    else:
        conn.execute(insert(AuditHead).values(values))
