"""Recomputing the chain and checking its signed checkpoints.

The verifier streams the entries in seq order in batches (keyset pages, so memory stays
flat however long the log is) and names the first seq that is wrong. The head row and
the checkpoints catch what a chain alone cannot: entries cut from the end, and a chain
rewritten with fresh hashes after a checkpoint was signed (crypto-audit.md, B.4).

A pruned chain (audit/prune.py) is verified from its anchor: the checkpoint below its
first entry signed as a prune note, whose hash the first kept entry must chain to. With
no such anchor the chain must start at entry 1, as before any prune.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.chain import ChainWalker, Link
from audit.checkpoints import (
    CHECKPOINT_COLUMNS,
    Checkpoint,
    Failed,
    check_signature,
    checkpoints_between,
    find_anchor,
    kept_from,
)
from audit.models import AuditBase, AuditCheckpoint, AuditEntry, AuditHead

_ENTRIES = AuditBase.metadata.tables["audit_entries"]
_ENTRY_COLUMNS = tuple(_ENTRIES.c[name] for name in Link._fields)
#: verifications started again when a prune committed while one ran (see verify_chain)
_RETRIES = 2


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
    #: the first stored entry (None when none is stored)
    first_seq: int | None = None
    #: entries below this seq were pruned; the signed prune anchor is at this seq - 1
    #: (None: nothing was pruned)
    pruned_below_seq: int | None = None


def verify_chain(
    session: Session, public_keys: Mapping[str, Ed25519PublicKey], *, batch_size: int = 5000
) -> VerifyReport:
    """Recompute every hash, check density, the head and every checkpoint's signature.

    Entries appended while this runs (beyond the head read at the start) are left for the
    next run, so verification can run beside live writers. A prune that commits while it
    runs (each statement may see a newer state: PostgreSQL's read sessions autocommit)
    would look like entries missing at the start: a failed run whose chain now starts
    further on is run again on the pruned chain, which must then verify on its own.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    report, start = _verify_once(session, public_keys, batch_size)
    for _ in range(_RETRIES):
        if report.ok or not _pruned_since(session, start):
            break
        report, start = _verify_once(session, public_keys, batch_size)
    return report


def _verify_once(
    session: Session, public_keys: Mapping[str, Ed25519PublicKey], batch_size: int
) -> tuple[VerifyReport, int | None]:
    row = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).first()
    head = None if row is None else (int(row.seq), str(row.hash))
    start = kept_from(session)
    progress = Progress(first_seq=start)
    failure: Failed | None = None
    try:
        if start is not None and start > 1:
            start_at_anchor(session, progress, start, public_keys)
        walk(session, progress, public_keys, None if head is None else head[0], batch_size)
        if head is not None:
            _check_head(progress.walker, *head)
        _check_tail(session, progress.walker, public_keys)
    except Failed as failed:
        failure = failed
    return _report(progress, head, failure), start


def _pruned_since(session: Session, start: int | None) -> bool:
    now = kept_from(session)
    return start is not None and now is not None and now > start


def start_at_anchor(session: Session, progress: Progress, start: int,
                    public_keys: Mapping[str, Ed25519PublicKey]) -> None:
    """Start the walk from the signed prune anchor below ``start``: there must be one."""
    anchor = find_anchor(session, start, public_keys)
    if anchor is None:
        raise Failed(1, f"entry 1 missing (no signed prune checkpoint anchors the chain "
                        f"kept from entry {start})")
    progress.walker = ChainWalker(anchor.seq, anchor.hash)
    progress.anchor = anchor.seq
    progress.checkpoints += 1


@dataclass
class Progress:
    """A walk so far: the walker, checkpoints verified, and where the walk started."""

    walker: ChainWalker = field(default_factory=ChainWalker)
    checkpoints: int = 0
    #: the first stored entry (the seq after the head when every entry was pruned)
    first_seq: int | None = None
    #: the seq of the prune anchor the walk started from (None: from genesis)
    anchor: int | None = None
    #: a seq whose hash to keep as the walk passes it (audit/prune.py), and that hash
    watch: int | None = None
    watched_hash: str | None = None



def walk(
    session: Session,
    progress: Progress,
    public_keys: Mapping[str, Ed25519PublicKey],
    upto: int | None,
    batch_size: int,
) -> None:
    """Feed the stored entries after the walk's start (up to ``upto``) to its walker and
    check each checkpoint on the way against its entry; raise Failed at the first fault."""
    # Core rows from the connection the session uses for these tables: the ORM's row
    # loading would cost a quarter of the time, and the entries are only read.
    connection = session.connection(bind_arguments={"mapper": AuditEntry})
    after = progress.anchor
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
        checkpoints = deque(checkpoints_between(session, after, last))
        for row in rows:
            link = Link(*row)
            found = progress.walker.feed(link)
            if found is not None:
                raise Failed(found.seq, found.problem)
            if link.seq == progress.watch:
                progress.watched_hash = link.hash
            while checkpoints and checkpoints[0].seq <= link.seq:
                _check_checkpoint(checkpoints.popleft(), link, public_keys)
                progress.checkpoints += 1
        after = last
        if len(rows) < batch_size:
            return



def _check_checkpoint(
    checkpoint: Checkpoint, link: Link, public_keys: Mapping[str, Ed25519PublicKey]
) -> None:
    check_signature(checkpoint, public_keys)
    if checkpoint.seq != link.seq:
        raise Failed(checkpoint.seq, f"checkpoint at {checkpoint.seq}: no such entry")
    if checkpoint.hash != link.hash:
        raise Failed(
            checkpoint.seq, f"checkpoint at {checkpoint.seq}: hash does not match the chain"
        )


def _check_head(walker: ChainWalker, head_seq: int, head_hash: str) -> None:
    if walker.last_seq < head_seq:
        missing = walker.last_seq + 1
        raise Failed(missing, f"entry {missing} missing (the head is at {head_seq})")
    if walker.last_hash != head_hash:
        raise Failed(head_seq or None, f"the head does not match the hash of entry {head_seq}")


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
            raise Failed(None, "the audit head is missing")
        if max_entry > head_now:
            raise Failed(head_now + 1, f"entry {head_now + 1} is beyond the head")
    # Every entry pruned: the chain ends at its anchor, and the head with it.
    last = max(max_entry or 0, walker.last_seq)
    if max_checkpoint is not None and max_checkpoint > last:
        row = session.execute(
            select(*CHECKPOINT_COLUMNS)
            .where(AuditCheckpoint.seq > last)
            .order_by(AuditCheckpoint.seq)
            .limit(1)
        ).one()
        checkpoint = Checkpoint(*row)
        check_signature(checkpoint, public_keys)
        raise Failed(
            last + 1, f"entry {last + 1} missing (checkpoint at {checkpoint.seq} covers it)"
        )


def _report(
    progress: Progress, head: tuple[int, str] | None, failure: Failed | None
) -> VerifyReport:
    walker = progress.walker
    head_seq, head_hash = head if head is not None else (walker.last_seq, walker.last_hash)
    first = progress.first_seq
    return VerifyReport(
        ok=failure is None,
        entries=walker.count,
        head_seq=head_seq,
        head_hash=head_hash,
        first_bad_seq=None if failure is None else failure.seq,
        problem=None if failure is None else failure.problem,
        checkpoints_verified=progress.checkpoints,
        first_seq=first if first is not None and first <= head_seq else None,
        pruned_below_seq=None if progress.anchor is None else progress.anchor + 1,
    )
