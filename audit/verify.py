"""Recomputing the chain and checking its signed checkpoints; exporting checkpoints.

The verifier streams the entries in seq order in batches (keyset pages, so memory stays
flat however long the log is) and names the first seq that is wrong. The head row and
the checkpoints catch what a chain alone cannot: entries cut from the end, and a chain
rewritten with fresh hashes after a checkpoint was signed (crypto-audit.md, B.4).
"""

from __future__ import annotations

import base64
import binascii
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.chain import ChainWalker, Link, checkpoint_message
from audit.clock import rfc3339
from audit.models import AuditBase, AuditCheckpoint, AuditEntry, AuditHead

_ENTRIES = AuditBase.metadata.tables["audit_entries"]
_ENTRY_COLUMNS = tuple(_ENTRIES.c[name] for name in Link._fields)
_CHECKPOINT_COLUMNS = (
    AuditCheckpoint.seq,
    AuditCheckpoint.hash,
    AuditCheckpoint.signed_at,
    AuditCheckpoint.key_id,
    AuditCheckpoint.signature,
)


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of a verification. ``problem`` names seqs and key ids only."""

    ok: bool
    entries: int  # entries verified (all of them when ok)
    head_seq: int  # 0 when empty
    head_hash: str  # GENESIS_HASH when empty
    first_bad_seq: int | None
    problem: str | None
    checkpoints_verified: int


class _Checkpoint(NamedTuple):
    seq: int
    hash: str
    signed_at: datetime
    key_id: str
    signature: str


class _Failed(Exception):
    def __init__(self, seq: int | None, problem: str) -> None:
        super().__init__(problem)
        self.seq = seq
        self.problem = problem


def verify_chain(
    session: Session, public_keys: Mapping[str, Ed25519PublicKey], *, batch_size: int = 5000
) -> VerifyReport:
    """Recompute every hash, check density, the head and every checkpoint's signature.

    Entries appended while this runs (beyond the head read at the start) are left for the
    next run, so verification can run beside live writers.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    row = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).first()
    head = None if row is None else (int(row.seq), str(row.hash))
    progress = _Progress()
    failure: _Failed | None = None
    try:
        _walk(session, progress, public_keys, None if head is None else head[0], batch_size)
        if head is not None:
            _check_head(progress.walker, *head)
        _check_tail(session, progress.walker, public_keys)
    except _Failed as failed:
        failure = failed
    return _report(progress, head, failure)


@dataclass
class _Progress:
    walker: ChainWalker = field(default_factory=ChainWalker)
    checkpoints: int = 0


def _walk(
    session: Session,
    progress: _Progress,
    public_keys: Mapping[str, Ed25519PublicKey],
    upto: int | None,
    batch_size: int,
) -> None:
    # Core rows from the connection the session uses for these tables: the ORM's row
    # loading would cost a quarter of the time, and the entries are only read.
    connection = session.connection(bind_arguments={"mapper": AuditEntry})
    after: int | None = None
    while True:
        stmt = select(*_ENTRY_COLUMNS).order_by(_ENTRIES.c.seq).limit(batch_size)
        if after is not None:
            stmt = stmt.where(_ENTRIES.c.seq > after)
        if upto is not None:
            stmt = stmt.where(_ENTRIES.c.seq <= upto)
        rows = connection.execute(stmt).all()
        if not rows:
            return
        last = int(rows[-1].seq)
        checkpoints = deque(_checkpoints_between(session, after, last))
        for row in rows:
            link = Link(*row)
            found = progress.walker.feed(link)
            if found is not None:
                raise _Failed(found.seq, found.problem)
            while checkpoints and checkpoints[0].seq <= link.seq:
                _check_checkpoint(checkpoints.popleft(), link, public_keys)
                progress.checkpoints += 1
        after = last
        if len(rows) < batch_size:
            return


def _checkpoints_between(session: Session, after: int | None, upto: int) -> list[_Checkpoint]:
    stmt = select(*_CHECKPOINT_COLUMNS).where(AuditCheckpoint.seq <= upto)
    if after is not None:
        stmt = stmt.where(AuditCheckpoint.seq > after)
    return [_Checkpoint(*row) for row in session.execute(stmt.order_by(AuditCheckpoint.seq))]


def _check_checkpoint(
    checkpoint: _Checkpoint, link: Link, public_keys: Mapping[str, Ed25519PublicKey]
) -> None:
    _check_signature(checkpoint, public_keys)
    if checkpoint.seq != link.seq:
        raise _Failed(checkpoint.seq, f"checkpoint at {checkpoint.seq}: no such entry")
    if checkpoint.hash != link.hash:
        raise _Failed(
            checkpoint.seq, f"checkpoint at {checkpoint.seq}: hash does not match the chain"
        )


def _check_signature(checkpoint: _Checkpoint, public_keys: Mapping[str, Ed25519PublicKey]) -> None:
    where = f"checkpoint at {checkpoint.seq}"
    key = public_keys.get(checkpoint.key_id)
    if key is None:
        raise _Failed(checkpoint.seq, f"{where}: unknown key {checkpoint.key_id!r}")
    try:
        signature = _b64url_decode(checkpoint.signature)
        message = checkpoint_message(checkpoint.seq, checkpoint.hash, checkpoint.signed_at)
        key.verify(signature, message)
    except (InvalidSignature, ValueError, TypeError):
        raise _Failed(checkpoint.seq, f"{where}: bad signature") from None


def _check_head(walker: ChainWalker, head_seq: int, head_hash: str) -> None:
    if walker.last_seq < head_seq:
        missing = walker.last_seq + 1
        raise _Failed(missing, f"entry {missing} missing (the head is at {head_seq})")
    if walker.last_hash != head_hash:
        raise _Failed(head_seq or None, f"the head does not match the hash of entry {head_seq}")


def _check_tail(
    session: Session, walker: ChainWalker, public_keys: Mapping[str, Ed25519PublicKey]
) -> None:
    """Entries beyond the head, or checkpoints beyond the last entry (a cut tail)."""
    # One statement, so one snapshot: a writer committing meanwhile moves all three.
    max_entry, head_now, max_checkpoint = session.execute(
        select(
            select(func.max(AuditEntry.seq)).scalar_subquery(),
            select(AuditHead.seq).where(AuditHead.id == 1).scalar_subquery(),
            select(func.max(AuditCheckpoint.seq)).scalar_subquery(),
        )
    ).one()
    if max_entry is not None:
        if head_now is None:
            raise _Failed(None, "the audit head is missing")
        if max_entry > head_now:
            raise _Failed(head_now + 1, f"entry {head_now + 1} is beyond the head")
    last = max_entry or 0
    if max_checkpoint is not None and max_checkpoint > last:
        row = session.execute(
            select(*_CHECKPOINT_COLUMNS)
            .where(AuditCheckpoint.seq > last)
            .order_by(AuditCheckpoint.seq)
            .limit(1)
        ).one()
        checkpoint = _Checkpoint(*row)
        _check_signature(checkpoint, public_keys)
        raise _Failed(
            last + 1, f"entry {last + 1} missing (checkpoint at {checkpoint.seq} covers it)"
        )


def _report(
    progress: _Progress, head: tuple[int, str] | None, failure: _Failed | None
) -> VerifyReport:
    walker = progress.walker
    head_seq, head_hash = head if head is not None else (walker.last_seq, walker.last_hash)
    return VerifyReport(
        ok=failure is None,
        entries=walker.count,
        head_seq=head_seq,
        head_hash=head_hash,
        first_bad_seq=None if failure is None else failure.seq,
        problem=None if failure is None else failure.problem,
        checkpoints_verified=progress.checkpoints,
    )


def _b64url_decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


def export_checkpoints(session: Session) -> list[dict[str, object]]:
    """Every checkpoint with its signed note, oldest first, to be kept outside this database."""
    rows = session.execute(select(*_CHECKPOINT_COLUMNS).order_by(AuditCheckpoint.seq))
    exported: list[dict[str, object]] = []
    for row in rows:
        checkpoint = _Checkpoint(*row)
        note = checkpoint_message(checkpoint.seq, checkpoint.hash, checkpoint.signed_at)
        exported.append(
            {
                "seq": checkpoint.seq,
                "hash": checkpoint.hash,
                "signed_at": rfc3339(checkpoint.signed_at),
                "key_id": checkpoint.key_id,
                "signature": checkpoint.signature,
                "note": note.decode("utf-8"),
            }
        )
    return exported
