"""Row ids: UUID version 7, time-ordered, never derived from data."""

import time
import uuid

from audit.ids import new_id


def test_new_ids_are_uuid_version_7_with_the_rfc_variant() -> None:
    ids = [uuid.UUID(new_id()) for _ in range(1000)]
    assert {u.version for u in ids} == {7}
    assert {u.variant for u in ids} == {uuid.RFC_4122}
    assert len({u.int for u in ids}) == 1000


def test_new_id_starts_with_the_current_time_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid.UUID(new_id()).int >> 80
    after = time.time_ns() // 1_000_000
    assert before <= value <= after


def test_ids_of_later_milliseconds_sort_after_earlier_ones() -> None:
    first = new_id()
    time.sleep(0.002)
    assert new_id() > first  # as strings too: what an index on the id column compares


def test_the_74_bits_after_the_time_are_random() -> None:
    # Within one millisecond ids still differ in their random bits, all of them used.
    rand_mask = (0xFFF << 64) | ((1 << 62) - 1)
    seen = 0
    for _ in range(2000):
        seen |= uuid.UUID(new_id()).int & rand_mask
    assert seen == rand_mask
