"""A pruned hash chain as pure values: walked from its anchor, no database (R-RET-01)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from audit.chain import (
    GENESIS_HASH,
    ChainWalker,
    Link,
    Unchained,
    checkpoint_message,
    link_entries,
    prune_message,
)

T0 = datetime(2025, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


def _chain(count: int) -> list[Link]:
    items = [Unchained("job", f"j{i}", "customer.read", None, f'{{"n":{i}}}')
             for i in range(count)]
    return link_entries(GENESIS_HASH, 1, T0, items)


def _walk(links: list[Link], start_seq: int, start_hash: str) -> tuple[int | None, int]:
    """The first bad seq (None: verifies) and the entries verified."""
    walker = ChainWalker(start_seq, start_hash)
    for link in links:
        found = walker.feed(link)
        if found is not None:
            return found.seq, walker.count
    return None, walker.count


def test_a_prune_note_is_not_an_ordinary_checkpoint_note() -> None:
    """The anchor of a pruned chain signs another note: an ordinary checkpoint's signature
    never anchors one."""
    digest = "00" * 31 + "01"
    pruned = prune_message(7, digest, T0)
    assert pruned != checkpoint_message(7, digest, T0)
    assert pruned.startswith(b"privacy-hub/audit/pruned\n7\n")
    assert prune_message(8, digest, T0) != pruned


def test_the_kept_chain_verifies_from_its_anchor_and_not_from_genesis() -> None:
    chain = _chain(10)
    anchor = chain[3]  # entries 1..4 pruned
    assert _walk(chain[4:], anchor.seq, anchor.hash) == (None, 6)
    assert _walk(chain[4:], 0, GENESIS_HASH) == (1, 0)


def test_an_anchor_with_another_hash_breaks_the_first_kept_entry() -> None:
    chain = _chain(6)
    assert _walk(chain[2:], 2, chain[0].hash)[0] == 3


@st.composite
def _cut_and_damage(draw: st.DrawFn) -> tuple[list[Link], int, int]:
    """A chain pruned below some entry, with one kept entry deleted: (the kept links, the
    last pruned seq, the deleted seq)."""
    count = draw(st.integers(min_value=2, max_value=30))
    chain = _chain(count)
    cut = draw(st.integers(min_value=0, max_value=count - 2))  # entries 1..cut pruned
    kept = chain[cut:]
    gone = draw(st.integers(min_value=0, max_value=len(kept) - 2))
    return [*kept[:gone], *kept[gone + 1:]], cut, kept[gone].seq


@given(_cut_and_damage())
def test_a_deleted_kept_entry_is_found_at_its_seq_wherever_the_chain_was_cut(
        case: tuple[list[Link], int, int]) -> None:
    """R-AUD-02 on a pruned chain: deleting any kept entry but the head's is named."""
    links, cut, deleted = case
    start_hash = GENESIS_HASH if cut == 0 else _chain(cut)[-1].hash
    assert _walk(links, cut, start_hash)[0] == deleted


@given(st.integers(min_value=1, max_value=30), st.data())
def test_any_cut_of_a_chain_verifies_from_its_anchor(count: int, data: st.DataObject) -> None:
    chain = _chain(count)
    cut = data.draw(st.integers(min_value=0, max_value=count))
    start_seq, start_hash = (0, GENESIS_HASH) if cut == 0 else (cut, chain[cut - 1].hash)
    assert _walk(chain[cut:], start_seq, start_hash) == (None, count - cut)
