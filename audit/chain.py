"""The hash chain, as pure functions over plain values: no database, no clock.

Each entry's hash commits to its predecessor and to its own fields::

    hash_i = SHA-256(0x00 || bytes(hash_{i-1}) || canonical_header_i)

where ``canonical_header_i`` is the deterministic JSON array
``[seq, recorded_at, actor_type, actor_id, action, customer_id, details]`` (UTF-8, no
spaces, ``recorded_at`` as RFC 3339 UTC with microseconds, ``details`` the stored canonical
JSON text). The 0x00 prefix is RFC 6962's leaf domain separator, kept so that a Merkle
layer can be added later without ambiguity (shared/research/crypto-audit.md, B.1, B.4).

Checkpoints sign a C2SP tlog-checkpoint style note: origin, size, base64 hash, time. The
checkpoint that anchors a pruned chain signs the same note under another origin
(``prune_message``), so that only the key holder can declare where the kept chain starts:
an ordinary checkpoint never stands in for one (audit/prune.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

GENESIS_HASH = "0" * 64
CHECKPOINT_ORIGIN = "privacy-hub/audit"
#: the origin of the note that anchors a pruned chain: "entries up to seq were pruned"
PRUNE_ORIGIN = "privacy-hub/audit/pruned"

_LEAF_PREFIX = b"\x00"
# One encoder, built once: json.dumps() with options builds a new one on every call,
# which is a third of the verifier's time.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(value: object) -> str:
    """Deterministic JSON: sorted keys, no spaces, no NaN, UTF-8 text kept as is."""
    return _CANONICAL.encode(value)


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC, always with microseconds: ``2025-01-31T09:00:00.000000Z``."""
    if value.tzinfo is None:
        raise ValueError("naive datetime in the audit chain; a UTC timestamp is required")
    text = value.isoformat(timespec="microseconds")
    if not text.endswith("+00:00"):
        text = value.astimezone(UTC).isoformat(timespec="microseconds")
    return text[:-6] + "Z"


def _hash_bytes(hex_hash: str) -> bytes:
    raw = bytes.fromhex(hex_hash)
    if len(raw) != 32:
        raise ValueError("a chain hash is 32 bytes of hex")
    return raw


def entry_hash(
    prev_hash: str,
    seq: int,
    recorded_at: datetime,
    actor_type: str,
    actor_id: str | None,
    action: str,
    customer_id: str | None,
    details_json: str,
) -> str:
    """The hex SHA-256 that chains entry ``seq`` to ``prev_hash``."""
    header = canonical_json(
        [seq, format_time(recorded_at), actor_type, actor_id, action, customer_id, details_json]
    )
    digest = hashlib.sha256(_LEAF_PREFIX)
    digest.update(_hash_bytes(prev_hash))
    digest.update(header.encode("utf-8"))
    return digest.hexdigest()


def checkpoint_message(seq: int, hash: str, signed_at: datetime) -> bytes:
    """The note a checkpoint signs: origin, chain size, base64 head hash, time."""
    return _note(CHECKPOINT_ORIGIN, seq, hash, signed_at)


def prune_message(seq: int, hash: str, signed_at: datetime) -> bytes:
    """The note that anchors a pruned chain: entries up to ``seq`` (whose hash is ``hash``)
    were pruned at ``signed_at``; the kept chain goes on from ``seq + 1``."""
    return _note(PRUNE_ORIGIN, seq, hash, signed_at)


def _note(origin: str, seq: int, hash: str, signed_at: datetime) -> bytes:
    root = base64.b64encode(_hash_bytes(hash)).decode("ascii")
    return f"{origin}\n{seq}\n{root}\n{format_time(signed_at)}\n".encode()


class Link(NamedTuple):
    """One chained entry as plain values, in stored column order."""

    seq: int
    recorded_at: datetime
    actor_type: str
    actor_id: str | None
    action: str
    customer_id: str | None
    details: str
    prev_hash: str
    hash: str


class Unchained(NamedTuple):
    """An entry waiting for its place in the chain."""

    actor_type: str
    actor_id: str | None
    action: str
    customer_id: str | None
    details: str


def link_entries(
    prev_hash: str, first_seq: int, recorded_at: datetime, items: Iterable[Unchained]
) -> list[Link]:
    """Chain ``items`` after ``prev_hash``, numbering them from ``first_seq``."""
    links: list[Link] = []
    for seq, item in enumerate(items, start=first_seq):
        digest = entry_hash(prev_hash, seq, recorded_at, *item)
        links.append(Link(seq, recorded_at, *item, prev_hash, digest))
        prev_hash = digest
    return links


@dataclass(frozen=True)
class Break:
    """Where and how a chain stops verifying. ``problem`` names seqs only, never data."""

    seq: int
    problem: str


class ChainWalker:
    """Checks links fed in seq order: density from 1, back-links, hashes, time order.

    Streaming, so a verifier can read the chain in batches of any size. A pruned chain is
    walked from its anchor: ``start_seq`` and ``start_hash`` are the seq and hash of the
    last pruned entry, taken from the signed checkpoint that anchors the kept chain.
    """

    def __init__(self, start_seq: int = 0, start_hash: str = GENESIS_HASH) -> None:
        self.count = 0
        self.last_seq = start_seq
        self.last_hash = start_hash
        self._last_time: datetime | None = None

    def feed(self, link: Link) -> Break | None:
        """Check the next link; a Break names the first seq that is wrong."""
        expected = self.last_seq + 1
        if link.seq > expected:
            return Break(expected, f"entry {expected} missing")
        if link.seq < expected:
            return Break(expected, f"entry {expected}: out of order")
        if link.prev_hash != self.last_hash:
            return Break(link.seq, f"entry {link.seq}: previous hash does not match the chain")
        try:
            digest = entry_hash(
                link.prev_hash,
                link.seq,
                link.recorded_at,
                link.actor_type,
                link.actor_id,
                link.action,
                link.customer_id,
                link.details,
            )
        except (TypeError, ValueError):
            return Break(link.seq, f"entry {link.seq}: malformed fields")
        if digest != link.hash:
            return Break(link.seq, f"entry {link.seq}: hash does not match its contents")
        if self._last_time is not None and link.recorded_at < self._last_time:
            return Break(link.seq, f"entry {link.seq}: recorded before entry {link.seq - 1}")
        self.count += 1
        self.last_seq = link.seq
        self.last_hash = link.hash
        self._last_time = link.recorded_at
        return None


def find_break(links: Iterable[Link]) -> Break | None:
    """The first problem in a whole chain given in seq order, or None if it verifies."""
    walker = ChainWalker()
    for link in links:
        found = walker.feed(link)
        if found is not None:
            return found
    return None
