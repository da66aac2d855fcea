"""Pruning the audit log below a signed checkpoint (R-RET-01: audit entries too are kept
for their retention period only).

``prune`` deletes the oldest entries, a batch at a time, in the caller's transaction. Each
call leaves a chain that ``verify_chain`` proves on its own, so a retention pass may stop
between any two calls.

How the kept chain stays proven. The first kept entry's ``prev_hash`` is the hash of the
last pruned one. ``prune`` signs that seq and hash with the audit key as a *prune note*
(audit/chain.py, ``prune_message``: another origin than an ordinary checkpoint's note) and
stores it as the checkpoint at that seq, the chain's anchor; the verifier starts from the
anchor's hash instead of genesis (audit/checkpoints.py, ``find_anchor``). The anchor is a
signature, not a row anyone with write access could move: an unsigned "pruned below"
marker would let them cut the log anywhere, and accepting an ordinary checkpoint as anchor
would let them cut it down to any checkpoint unnoticed. Only the key holder writes a prune
note, and only where it pruned, so entries deleted any other way are reported missing.

Why pruning never launders tampering into a signature. A new signature over an entry's
hash vouches for every entry before it. So before signing at the boundary ``b``, ``prune``
verifies the chain from the current anchor (or genesis) through the first ordinary
checkpoint at or above ``b``, that checkpoint's signature included. That checkpoint was
signed when its entries were appended, before anyone could alter them, so an entry
edited below it (even with every later hash recomputed) fails against it, and ``prune``
raises AuditChainBroken instead of signing anything; the broken chain is left for
``verify_chain`` to report. For the same reason the boundary never passes the newest
ordinary checkpoint: entries above it are not yet vouched for by any signature made when
they were appended.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from audit.chain import prune_message
from audit.checkpoints import Failed
from audit.clock import utcnow
from audit.committing import audited
from audit.errors import AuditChainBroken, AuditError
from audit.head import CheckpointSigner
from audit.models import AuditCheckpoint, AuditEntry
from audit.verify import Progress, start_at_anchor, walk

_ENTRIES = cast(Table, AuditEntry.__table__)
_CHECKPOINTS = cast(Table, AuditCheckpoint.__table__)
#: entries read per statement while verifying the stretch to be pruned
_READ_BATCH = 5000


def prune(
    session: Session, *, before: datetime, limit: int, signer: CheckpointSigner | None = None
) -> int:
    """Delete at most ``limit`` of the oldest entries recorded before ``before``, only at or
    below an ordinary signed checkpoint; return how many were deleted.

    The new first entry is anchored by a prune note signed at the last deleted one, after
    the chain up to a checkpoint at or above it was verified (see the module's docstring);
    checkpoints below the anchor go with their entries. ``signer`` defaults to the one the
    session's factory was installed with (``audit.install``). Raises AuditChainBroken,
    deleting nothing, when that stretch of the chain does not verify. The caller commits;
    each call is meant to be a short transaction of its own.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if before.tzinfo is None:
        raise ValueError("naive datetime given where a UTC timestamp is required")
    conn = session.connection(bind_arguments={"mapper": AuditEntry})
    boundary = _boundary(conn, before, limit)
    if boundary is None:
        return 0
    first, last, cover = boundary
    signer = signer if signer is not None else _installed_signer(session)
    digest = _verified_hash(session, signer, first, last, cover)
    _write_anchor(conn, signer, last, digest)
    deleted = conn.execute(delete(_ENTRIES).where(_ENTRIES.c.seq <= last)).rowcount
    return int(deleted)


def _boundary(conn: Connection, before: datetime, limit: int) -> tuple[int, int, int] | None:
    """The first entry, the last one to prune and the checkpoint that vouches for it (the
    first ordinary checkpoint at or above it), or None when nothing may be pruned."""
    first = conn.scalar(select(func.min(_ENTRIES.c.seq)))
    if first is None:
        return None
    newest = conn.scalar(select(func.max(_CHECKPOINTS.c.seq)).where(_CHECKPOINTS.c.seq >= first))
    if newest is None:
        return None
    # Time never goes back along the chain (the verifier checks it), so the entries
    # recorded before ``before`` are a prefix of it.
    last = conn.scalar(
        select(func.max(_ENTRIES.c.seq)).where(
            _ENTRIES.c.seq >= first,
            _ENTRIES.c.seq <= min(newest, first + limit - 1),
            _ENTRIES.c.recorded_at < before,
        )
    )
    if last is None:
        return None
    cover = conn.scalar(select(func.min(_CHECKPOINTS.c.seq)).where(_CHECKPOINTS.c.seq >= last))
    return int(first), int(last), int(cover)


def _installed_signer(session: Session) -> CheckpointSigner:
    settings = audited(type(session))
    signer = None if settings is None else settings.checkpoints.signer
    if signer is None:
        raise AuditError("pruning the audit log needs the checkpoint signer: "
                         "audit.install(factory, signer=...) or prune(..., signer=...)")
    return signer


def _verified_hash(
    session: Session, signer: CheckpointSigner, first: int, last: int, cover: int
) -> str:
    """The hash of entry ``last``, once the chain from its anchor through the checkpoint
    at ``cover`` has verified under the signer's key."""
    keys = {signer.key_id: signer.private_key.public_key()}
    progress = Progress(first_seq=first, watch=last)
    try:
        if first > 1:
            start_at_anchor(session, progress, first, keys)
        walk(session, progress, keys, cover, _READ_BATCH)
        if progress.walker.last_seq < cover:
            missing = progress.walker.last_seq + 1
            raise Failed(missing, f"entry {missing} missing (checkpoint at {cover} covers it)")
    except Failed as failed:
        raise AuditChainBroken(failed.seq, failed.problem) from None
    if progress.watched_hash is None:  # pragma: no cover - the walk passed ``last``
        raise AuditChainBroken(last, f"entry {last} missing")
    return progress.watched_hash


def _write_anchor(conn: Connection, signer: CheckpointSigner, seq: int, digest: str) -> None:
    """Replace the checkpoints up to ``seq`` by the prune note signed at ``seq``."""
    conn.execute(delete(_CHECKPOINTS).where(_CHECKPOINTS.c.seq <= seq))
    signed_at = utcnow()
    values: dict[str, Any] = {
        "seq": seq, "hash": digest, "signed_at": signed_at, "key_id": signer.key_id,
        "signature": signer.sign(prune_message(seq, digest, signed_at)),
    }
    # Two passes pruning at once may sign the same boundary: either note anchors it.
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(postgresql.insert(_CHECKPOINTS).values(values)
                     .on_conflict_do_nothing(index_elements=["seq"]))
    elif dialect == "sqlite":
        conn.execute(sqlite.insert(_CHECKPOINTS).values(values)
                     .on_conflict_do_nothing(index_elements=["seq"]))
    else:
        conn.execute(insert(_CHECKPOINTS).values(values))
