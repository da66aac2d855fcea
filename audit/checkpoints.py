"""Signed checkpoints: reading them, checking their signatures, the anchor of a pruned chain.

The audit key signs two kinds of note (audit/chain.py). An ordinary checkpoint, written as
entries are appended, signs the chain's hash at its seq. A prune anchor, written by
``audit.prune`` where it cut the chain, signs the hash of the last pruned entry under
another origin. The anchor of the kept chain is the newest checkpoint below its first
entry whose signature verifies as a prune note; an ordinary checkpoint never stands in for
one, so entries deleted outside a prune are reported missing even down to a checkpoint.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.chain import checkpoint_message, prune_message
from audit.clock import rfc3339
from audit.models import AuditCheckpoint, AuditEntry, AuditHead

CHECKPOINT_COLUMNS = (
    AuditCheckpoint.seq,
    AuditCheckpoint.hash,
    AuditCheckpoint.signed_at,
    AuditCheckpoint.key_id,
    AuditCheckpoint.signature,
)


class Checkpoint(NamedTuple):
    seq: int
    hash: str
    signed_at: datetime
    key_id: str
    signature: str


class Failed(Exception):
    """Where verification stops: a seq (or None) and a problem naming seqs and key ids only."""

    def __init__(self, seq: int | None, problem: str) -> None:
        super().__init__(problem)
        self.seq = seq
        self.problem = problem


def checkpoints_between(session: Session, after: int | None, upto: int) -> list[Checkpoint]:
    """The checkpoints with ``after < seq <= upto``, oldest first."""
    stmt = select(*CHECKPOINT_COLUMNS).where(AuditCheckpoint.seq <= upto)
    if after is not None:
        stmt = stmt.where(AuditCheckpoint.seq > after)
    return [Checkpoint(*row) for row in session.execute(stmt.order_by(AuditCheckpoint.seq))]


def check_signature(checkpoint: Checkpoint, public_keys: Mapping[str, Ed25519PublicKey],
                    *, prune: bool = False) -> None:
    """Raise Failed unless the checkpoint's signature verifies (as a prune note with
    ``prune``, else as an ordinary checkpoint) under a known key."""
    if not _verifies(checkpoint, _key(checkpoint, public_keys), prune=prune):
        raise Failed(checkpoint.seq, f"checkpoint at {checkpoint.seq}: bad signature")


def find_anchor(session: Session, below: int,
                public_keys: Mapping[str, Ed25519PublicKey]) -> Checkpoint | None:
    """The newest checkpoint below ``below`` signed as a prune anchor, or None.

    Ordinary checkpoints found on the way (normally there are none: a prune removes the
    checkpoints below its anchor) are passed over, so that entries deleted down to one are
    reported missing; a checkpoint that verifies as neither is a bad signature.
    """
    stmt = (select(*CHECKPOINT_COLUMNS).where(AuditCheckpoint.seq < below)
            .order_by(AuditCheckpoint.seq.desc()))
    for row in session.execute(stmt):
        checkpoint = Checkpoint(*row)
        key = _key(checkpoint, public_keys)
        if _verifies(checkpoint, key, prune=True):
            return checkpoint
        if not _verifies(checkpoint, key, prune=False):
            raise Failed(checkpoint.seq, f"checkpoint at {checkpoint.seq}: bad signature")
    return None


def kept_from(session: Session) -> int | None:
    """Where the stored chain starts: its first entry's seq; the seq after the head when
    every entry was pruned; None for a log with no entry and no head."""
    first, head = session.execute(select(
        select(func.min(AuditEntry.seq)).scalar_subquery(),
        select(AuditHead.seq).where(AuditHead.id == 1).scalar_subquery(),
    )).one()
    if first is not None:
        return int(first)
    return None if head is None else int(head) + 1


def _key(checkpoint: Checkpoint,
         public_keys: Mapping[str, Ed25519PublicKey]) -> Ed25519PublicKey:
    key = public_keys.get(checkpoint.key_id)
    if key is None:
        raise Failed(checkpoint.seq,
                     f"checkpoint at {checkpoint.seq}: unknown key {checkpoint.key_id!r}")
    return key


def _verifies(checkpoint: Checkpoint, key: Ed25519PublicKey, *, prune: bool) -> bool:
    note = prune_message if prune else checkpoint_message
    try:
        signature = _b64url_decode(checkpoint.signature)
        key.verify(signature, note(checkpoint.seq, checkpoint.hash, checkpoint.signed_at))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _b64url_decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


def export_checkpoints(session: Session) -> list[dict[str, object]]:
    """Every checkpoint with its signed note, oldest first, to be kept outside this database.

    ``kind`` is ``prune`` for the anchor of a pruned chain (below its first entry: its note
    is the prune note) and ``append`` for the others.
    """
    start = kept_from(session)
    rows = session.execute(select(*CHECKPOINT_COLUMNS).order_by(AuditCheckpoint.seq))
    exported: list[dict[str, object]] = []
    for row in rows:
        checkpoint = Checkpoint(*row)
        pruned = start is not None and checkpoint.seq < start
        note = (prune_message if pruned else checkpoint_message)(
            checkpoint.seq, checkpoint.hash, checkpoint.signed_at)
        exported.append(
            {
                "seq": checkpoint.seq,
                "hash": checkpoint.hash,
                "signed_at": rfc3339(checkpoint.signed_at),
                "key_id": checkpoint.key_id,
                "signature": checkpoint.signature,
                "kind": "prune" if pruned else "append",
                "note": note.decode("utf-8"),
            }
        )
    return exported
