"""Pruning the audit log below a signed checkpoint, on SQLite and PostgreSQL (R-RET-01).

The clock is injected (audit.head.utcnow, what the chain stamps entries with): entries are
written "years ago" and "now" without sleeping. Tampering is SQL straight to the tables,
as an attacker with database access would do it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Engine, delete, event, select, update
from sqlalchemy.orm import Session, sessionmaker

from audit import (
    Actor,
    AuditBase,
    AuditChainBroken,
    AuditCheckpoint,
    AuditEntry,
    AuditError,
    CheckpointSigner,
    VerifyReport,
    entries,
    entry_hash,
    export_checkpoints,
    install,
    prune,
    record,
    verify_chain,
)
from audit.chain import checkpoint_message
from privacy_hub.db import make_engine, make_sessionmaker, read_only, transaction

STAFF = Actor("staff", "staff-7")
CUSTOMER_ID = "4d0c6a52-8f0e-4c57-9d8b-0c9a3b1d2e10"
LONG_AGO = datetime(2019, 1, 10, 9, 0, tzinfo=UTC)
NOW = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)


class Clock:
    """The time the chain stamps entries with, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        self.now += timedelta(microseconds=1)
        return self.now


@dataclass
class Log:
    engine: Engine
    factory: sessionmaker[Session]
    signer: CheckpointSigner
    clock: Clock

    @property
    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        return {self.signer.key_id: self.signer.private_key.public_key()}

    def write(self, count: int, at: datetime) -> None:
        self.clock.now = max(self.clock.now, at)
        for n in range(count):
            with transaction(self.factory) as session:
                record(session, actor=STAFF, action="customer.read", customer_id=CUSTOMER_ID,
                       details={"n": n})

    def prune(self, before: datetime, limit: int = 1000) -> int:
        with transaction(self.factory) as session:
            return prune(session, before=before, limit=limit)

    def verify(self, **kw: Any) -> VerifyReport:
        with self.factory() as session:
            return verify_chain(session, self.public_keys, **kw)

    def seqs(self, column: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.scalars(select(column).order_by(column)))

    def tamper(self, *statements: Any) -> None:
        with self.engine.begin() as conn:
            for statement in statements:
                conn.execute(statement)


@pytest.fixture
def log(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Log]:
    engine = make_engine(db_url)
    AuditBase.metadata.create_all(engine)
    factory = make_sessionmaker(engine)
    signer = CheckpointSigner("k1", Ed25519PrivateKey.generate())
    install(factory, signer=signer, checkpoint_every=10, checkpoint_interval=None)
    clock = Clock(LONG_AGO)
    monkeypatch.setattr("audit.head.utcnow", clock)
    yield Log(engine, factory, signer, clock)
    engine.dispose()


def test_old_entries_are_pruned_and_the_kept_chain_verifies(log: Log) -> None:
    """R-RET-01: entries past their period go; the rest still verifies from a signed anchor."""
    log.write(25, LONG_AGO)
    log.write(5, NOW)  # checkpoints at 10, 20, 30

    assert log.prune(before=NOW - timedelta(days=1)) == 25

    assert log.seqs(AuditEntry.seq) == list(range(26, 31))
    assert log.seqs(AuditCheckpoint.seq) == [25, 30]  # the anchor, and the one above
    report = log.verify()
    assert report.ok, report.problem
    assert (report.entries, report.head_seq, report.first_seq, report.pruned_below_seq) == (
        5, 30, 26, 26)
    assert report.checkpoints_verified == 2


def test_entries_newer_than_before_are_never_pruned(log: Log) -> None:
    """R-RET-01: only entries recorded before the cut-off go, however large the batch."""
    log.write(12, LONG_AGO)
    log.write(18, NOW)
    newer = [s for s, at in zip(log.seqs(AuditEntry.seq), log.seqs(AuditEntry.recorded_at),
                                strict=True) if at >= NOW]

    assert log.prune(before=NOW, limit=1000) == 12

    assert log.seqs(AuditEntry.seq) == newer == list(range(13, 31))
    assert log.verify().ok


def test_entries_above_the_newest_checkpoint_are_never_pruned(log: Log) -> None:
    """Entries no signature made at append time vouches for yet stay, even when old."""
    log.write(25, LONG_AGO)  # checkpoints at 10, 20

    assert log.prune(before=NOW) == 20
    assert log.prune(before=NOW) == 0  # nothing above the anchor is vouched for

    assert log.seqs(AuditEntry.seq) == list(range(21, 26))
    report = log.verify()
    assert report.ok, report.problem
    assert (report.entries, report.pruned_below_seq) == (5, 21)


def test_pruning_runs_in_batches_of_limit_and_verifies_between_them(log: Log) -> None:
    log.write(25, LONG_AGO)
    log.write(1, NOW)  # checkpoints at 10, 20

    counts = []
    while count := log.prune(before=NOW, limit=7):
        counts.append(count)
        report = log.verify(batch_size=4)
        assert report.ok, report.problem
        assert report.first_seq == sum(counts) + 1
        assert report.entries == 26 - sum(counts)

    assert counts == [7, 7, 6]  # the last batch stops at the newest checkpoint (20)
    assert log.seqs(AuditCheckpoint.seq) == [20]


def test_a_fully_pruned_log_verifies_and_grows_on(log: Log) -> None:
    log.write(20, LONG_AGO)  # the head's entry has a checkpoint: everything may go
    assert log.prune(before=NOW) == 20
    empty = log.verify()
    assert empty.ok, empty.problem
    assert (empty.entries, empty.head_seq, empty.first_seq, empty.pruned_below_seq) == (
        0, 20, None, 21)

    log.write(3, NOW)
    grown = log.verify()
    assert grown.ok, grown.problem
    assert (grown.entries, grown.head_seq, grown.first_seq) == (3, 23, 21)


def test_paging_through_the_entries_starts_at_the_first_kept_one(log: Log) -> None:
    log.write(15, LONG_AGO)
    log.write(5, NOW)
    assert log.prune(before=NOW) == 15
    with log.factory() as session:
        assert [e.seq for e in entries(session, since_seq=0, limit=3)] == [16, 17, 18]
        assert [e.seq for e in entries(session, since_seq=17, limit=3)] == [18, 19, 20]
        assert [e.seq for e in entries(session, before_seq=18, limit=5)] == [16, 17]


@pytest.fixture
def pruned(log: Log) -> Log:
    """Entries 1..7 pruned (the anchor at 7), 8..30 kept, checkpoints at 10, 20, 30."""
    log.write(7, LONG_AGO)
    log.write(23, NOW)
    assert log.prune(before=NOW) == 7
    assert log.verify().ok
    return log


def _broken_at(log: Log, seq: int) -> str:
    report = log.verify()
    assert not report.ok
    assert report.first_bad_seq == seq
    assert report.problem is not None
    return report.problem


def test_deleting_a_kept_entry_in_the_middle_is_detected(pruned: Log) -> None:
    """R-AUD-02 on a pruned chain."""
    pruned.tamper(delete(AuditEntry).where(AuditEntry.seq == 15))
    assert _broken_at(pruned, 15) == "entry 15 missing"


@pytest.mark.parametrize("upto", [9, 10, 12])  # 10 has an ordinary checkpoint
def test_deleting_the_entries_just_above_the_anchor_is_detected(pruned: Log, upto: int) -> None:
    """An ordinary checkpoint never stands in for the prune anchor: cutting the kept chain
    down to one is not a prune."""
    pruned.tamper(delete(AuditEntry).where(AuditEntry.seq <= upto))
    assert _broken_at(pruned, 8) == "entry 8 missing"


@pytest.mark.parametrize(("column", "value"), [("action", "customer.erased"),
                                                ("prev_hash", "f" * 64)])
def test_editing_the_first_kept_entry_is_detected(pruned: Log, column: str, value: str) -> None:
    pruned.tamper(update(AuditEntry).where(AuditEntry.seq == 8).values({column: value}))
    assert _broken_at(pruned, 8).startswith("entry 8")


def test_rechaining_the_first_kept_entry_onto_a_moved_anchor_is_detected(pruned: Log) -> None:
    """Moving the anchor's hash (and recomputing the kept chain from it) breaks its signature."""
    with pruned.factory() as session:
        first = session.get_one(AuditEntry, 8)
        fake = "ab" * 32
        digest = entry_hash(fake, 8, first.recorded_at, first.actor_type, first.actor_id,
                            first.action, first.customer_id, first.details)
    pruned.tamper(
        update(AuditCheckpoint).where(AuditCheckpoint.seq == 7).values(hash=fake),
        update(AuditEntry).where(AuditEntry.seq == 8).values(prev_hash=fake, hash=digest))
    assert _broken_at(pruned, 7) == "checkpoint at 7: bad signature"


def test_deleting_the_anchor_checkpoint_is_detected(pruned: Log) -> None:
    pruned.tamper(delete(AuditCheckpoint).where(AuditCheckpoint.seq == 7))
    problem = _broken_at(pruned, 1)
    assert problem.startswith("entry 1 missing")
    assert "kept from entry 8" in problem


def test_an_anchor_signed_as_an_ordinary_checkpoint_is_refused(pruned: Log) -> None:
    """Only a prune note anchors: the key's signature over the ordinary note does not."""
    with pruned.factory() as session:
        anchor = session.get_one(AuditCheckpoint, 7)
        ordinary = pruned.signer.sign(checkpoint_message(7, anchor.hash, anchor.signed_at))
    pruned.tamper(update(AuditCheckpoint).where(AuditCheckpoint.seq == 7)
                  .values(signature=ordinary))
    assert _broken_at(pruned, 1).startswith("entry 1 missing")


def test_prune_refuses_to_sign_over_an_edited_entry(log: Log) -> None:
    """Tampering is never laundered into a prune signature: nothing is deleted or signed."""
    log.write(25, LONG_AGO)
    log.tamper(update(AuditEntry).where(AuditEntry.seq == 3).values(action="customer.erased"))

    with pytest.raises(AuditChainBroken) as caught:
        log.prune(before=NOW, limit=5)

    assert caught.value.seq == 3
    assert log.seqs(AuditEntry.seq) == list(range(1, 26))
    assert log.seqs(AuditCheckpoint.seq) == [10, 20]
    assert log.verify().first_bad_seq == 3


def test_prune_checks_past_its_boundary_up_to_the_next_checkpoint(log: Log) -> None:
    """A chain rewritten with fresh hashes verifies link by link up to the boundary (5):
    only the checkpoint signed at append time (10) exposes it, so prune reads on to it."""
    log.write(25, LONG_AGO)
    with log.factory() as session:
        chain = entries(session, limit=100)
    prev, statements = chain[1].hash, []
    for entry in chain[2:]:
        action = "customer.erased" if entry.seq == 3 else entry.action
        digest = entry_hash(prev, entry.seq, entry.recorded_at, entry.actor_type,
                            entry.actor_id, action, entry.customer_id, entry.details)
        statements.append(update(AuditEntry).where(AuditEntry.seq == entry.seq)
                          .values(action=action, prev_hash=prev, hash=digest))
        prev = digest
    log.tamper(*statements)

    with pytest.raises(AuditChainBroken) as caught:
        log.prune(before=NOW, limit=5)

    assert caught.value.seq == 10
    assert log.seqs(AuditEntry.seq) == list(range(1, 26))


def test_the_exported_anchor_verifies_with_the_public_key_alone(pruned: Log) -> None:
    with pruned.factory() as session:
        exported = export_checkpoints(session)
    assert [(c["seq"], c["kind"]) for c in exported] == [
        (7, "prune"), (10, "append"), (20, "append"), (30, "append")]
    for checkpoint in exported:
        signature = base64.urlsafe_b64decode(str(checkpoint["signature"]) + "==")
        pruned.public_keys["k1"].verify(signature, str(checkpoint["note"]).encode())
    assert str(exported[0]["note"]).startswith("privacy-hub/audit/pruned\n7\n")


def test_prune_needs_a_signer_and_sane_arguments(log: Log) -> None:
    log.write(12, LONG_AGO)
    unsigned_factory = make_sessionmaker(log.engine)
    install(unsigned_factory)
    with unsigned_factory() as session, pytest.raises(AuditError, match="signer"):
        prune(session, before=NOW, limit=10)
    with log.factory() as session:
        with pytest.raises(ValueError, match="limit"):
            prune(session, before=NOW, limit=0)
        with pytest.raises(ValueError, match="naive"):
            prune(session, before=NOW.replace(tzinfo=None), limit=10)
    assert log.seqs(AuditEntry.seq) == list(range(1, 13))
    # An explicit signer serves a factory installed without one.
    with transaction(unsigned_factory) as session:
        assert prune(session, before=NOW, limit=10, signer=log.signer) == 10
    assert log.verify().ok


def test_nothing_to_prune_in_an_empty_log(log: Log) -> None:
    assert log.prune(before=NOW) == 0
    assert log.verify().ok


def test_a_prune_committing_while_the_chain_is_verified_is_no_false_alarm(log: Log) -> None:
    """PostgreSQL's read sessions see each statement's own snapshot: a prune that commits
    mid-walk makes the walk start again on the pruned chain. SQLite's read keeps one
    snapshot: it verifies the chain as it was."""
    log.write(25, LONG_AGO)
    log.write(5, NOW)
    assert log.prune(before=NOW, limit=7) == 7
    reader = read_only(log.engine)
    walks: list[int] = []

    def prune_during_the_walk(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "ORDER BY audit_entries.seq" in statement and "LIMIT" in statement:
            walks.append(1)
            if len(walks) == 2:  # between the first batch and the second
                assert log.prune(before=NOW, limit=7) == 7

    event.listen(reader, "before_cursor_execute", prune_during_the_walk)
    try:
        with make_sessionmaker(reader)() as session:
            report = verify_chain(session, log.public_keys, batch_size=4)
    finally:
        event.remove(reader, "before_cursor_execute", prune_during_the_walk)

    assert report.ok, report.problem
    assert log.seqs(AuditEntry.seq)[0] == 15  # the prune did commit meanwhile
    assert report.first_seq in {8, 15}
    assert report.entries == 31 - report.first_seq
