"""The audit hash chain as pure functions: no database, no clock."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.chain import (
    GENESIS_HASH,
    Link,
    Unchained,
    checkpoint_message,
    entry_hash,
    find_break,
    format_time,
    link_entries,
)

T0 = datetime(2025, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
PREV = "ab" * 32
FIELDS = {
    "prev_hash": PREV,
    "seq": 7,
    "recorded_at": T0,
    "actor_type": "staff",
    "actor_id": "staff-42",
    "action": "consent.granted",
    "customer_id": "0b7e7c8e-1f0e-4b8e-9a57-3f1f5d2d7a10",
    "details_json": '{"purpose":"newsletter","ver":3}',
}
CHANGED = {
    "prev_hash": "cd" * 32,
    "seq": 8,
    "recorded_at": T0 + timedelta(microseconds=1),
    "actor_type": "job",
    "actor_id": "staff-43",
    "action": "consent.withdrawn",
    "customer_id": None,
    "details_json": '{"purpose":"newsletter","ver":4}',
}


def test_entry_hash_follows_the_documented_encoding() -> None:
    """The format is pinned: SHA-256(0x00 || prev || canonical JSON header). R-AUD-02."""
    header = (
        '[7,"2025-03-01T09:30:15.123456Z","staff","staff-42","consent.granted",'
        '"0b7e7c8e-1f0e-4b8e-9a57-3f1f5d2d7a10","{\\"purpose\\":\\"newsletter\\",\\"ver\\":3}"]'
    )
    expected = hashlib.sha256(b"\x00" + bytes.fromhex(PREV) + header.encode()).hexdigest()
    assert entry_hash(**FIELDS) == expected


def test_entry_hash_is_deterministic() -> None:
    first = entry_hash(**FIELDS)
    assert entry_hash(**dict(FIELDS)) == first
    assert len(first) == 64
    assert first == first.lower()


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_changing_any_field_changes_the_hash(field: str) -> None:
    """R-CREC-03 / R-AUD-02: every stored field is covered by the hash."""
    changed = {**FIELDS, field: CHANGED[field]}
    assert entry_hash(**changed) != entry_hash(**FIELDS)


def test_null_and_the_string_null_hash_differently() -> None:
    as_none = entry_hash(**{**FIELDS, "actor_id": None})
    as_text = entry_hash(**{**FIELDS, "actor_id": "null"})
    assert as_none != as_text


def test_the_same_instant_in_another_zone_hashes_the_same() -> None:
    cest = timezone(timedelta(hours=2))
    same_instant = entry_hash(**{**FIELDS, "recorded_at": T0.astimezone(cest)})
    assert same_instant == entry_hash(**FIELDS)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        entry_hash(**{**FIELDS, "recorded_at": T0.replace(tzinfo=None)})


def test_a_malformed_previous_hash_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        entry_hash(**{**FIELDS, "prev_hash": "ab" * 31})


def test_times_are_written_with_microseconds() -> None:
    assert format_time(T0.replace(microsecond=0)) == "2025-03-01T09:30:15.000000Z"


def test_checkpoint_message_is_a_stable_signed_note() -> None:
    note = checkpoint_message(1000, "00" * 31 + "01", T0)
    root = base64.b64encode(bytes(31) + b"\x01").decode()
    assert note == f"privacy-hub/audit\n1000\n{root}\n2025-03-01T09:30:15.123456Z\n".encode()


@pytest.mark.parametrize(
    ("seq", "digest", "signed_at"),
    [
        (1001, "00" * 31 + "01", T0),
        (1000, "00" * 31 + "02", T0),
        (1000, "00" * 31 + "01", T0 + timedelta(microseconds=1)),
    ],
)
def test_checkpoint_message_changes_with_each_field(
    seq: int, digest: str, signed_at: datetime
) -> None:
    assert checkpoint_message(seq, digest, signed_at) != checkpoint_message(
        1000, "00" * 31 + "01", T0
    )


def _chain(count: int) -> list[Link]:
    items = [
        Unchained("customer", f"c{i}", "consent.granted", f"cust-{i % 3}", f'{{"n":{i}}}')
        for i in range(count)
    ]
    return link_entries(GENESIS_HASH, 1, T0, items)


def test_a_freshly_linked_chain_starts_at_genesis_and_verifies() -> None:
    chain = _chain(5)
    assert [link.seq for link in chain] == [1, 2, 3, 4, 5]
    assert chain[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in pairwise(chain))
    assert find_break(chain) is None


def test_a_deleted_entry_is_reported_as_missing() -> None:
    chain = _chain(6)
    broken = find_break(chain[:3] + chain[4:])
    assert broken is not None
    assert broken.seq == 4
    assert broken.problem == "entry 4 missing"


def test_swapped_neighbours_are_detected_at_the_lower_seq() -> None:
    chain = _chain(6)
    a, b = chain[2], chain[3]
    swapped = [*chain[:2], b._replace(seq=a.seq), a._replace(seq=b.seq), *chain[4:]]
    broken = find_break(swapped)
    assert broken is not None
    assert broken.seq == 3


def test_time_going_backwards_is_detected_even_with_good_hashes() -> None:
    items = [Unchained("system", None, "key.rotated", None, "{}")] * 2
    first = link_entries(GENESIS_HASH, 1, T0, items[:1])
    second = link_entries(first[-1].hash, 2, T0 - timedelta(seconds=1), items[1:])
    broken = find_break(first + second)
    assert broken is not None
    assert broken.seq == 2
    assert "recorded before" in broken.problem


_text = st.text(min_size=0, max_size=12)
_hex64 = st.binary(min_size=32, max_size=32).map(bytes.hex)


@st.composite
def _tampered(draw: st.DrawFn) -> tuple[list[Link], int]:
    """A valid chain, and the same chain with one field of one entry changed."""
    count = draw(st.integers(min_value=1, max_value=25))
    items = [
        Unchained(
            draw(st.sampled_from(["system", "staff", "customer", "job", "cli"])),
            draw(st.none() | _text),
            draw(st.sampled_from(["consent.granted", "customer.read", "request.verified"])),
            draw(st.none() | _text),
            draw(_text),
        )
        for _ in range(count)
    ]
    start = draw(
        st.datetimes(
            timezones=st.just(UTC), min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)
        )
    )
    chain = link_entries(GENESIS_HASH, 1, start, items)
    index = draw(st.integers(min_value=0, max_value=count - 1))
    target = chain[index]
    field = draw(st.sampled_from(Link._fields))
    old = getattr(target, field)

    def changed(value: object) -> bool:  # named: see _fits_an_address_column in test_fuzz_openapi
        return value != old

    if field == "seq":
        new: object = draw(
            st.integers(min_value=-(2**40), max_value=2**40).filter(changed)
        )
    elif field == "recorded_at":
        shift = draw(st.integers(min_value=-(10**9), max_value=10**9).filter(bool))
        new = old + timedelta(microseconds=shift)
    elif field in {"prev_hash", "hash"}:
        new = draw(_hex64.filter(changed))
    elif field in {"actor_id", "customer_id"}:
        new = draw((st.none() | _text).filter(changed))
    else:
        new = draw(_text.filter(changed))
    tampered = [*chain[:index], target._replace(**{field: new}), *chain[index + 1 :]]
    return tampered, target.seq


@given(_tampered())
def test_changing_any_field_of_any_entry_is_detected_at_exactly_that_seq(
    case: tuple[list[Link], int],
) -> None:
    """R-CREC-03 / R-AUD-02: a single altered field is named at its own seq."""
    chain, seq = case
    broken = find_break(chain)
    assert broken is not None
    assert broken.seq == seq
