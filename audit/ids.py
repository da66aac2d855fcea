"""Ids for every row the hub creates: UUID version 7 strings, never derived from data."""

from __future__ import annotations

import os
import time
import uuid

_V7_VERSION_AND_VARIANT = (0x7 << 76) | (0b10 << 62)
_RAND_A_MASK = 0xFFF << 64
_RAND_B_MASK = (1 << 62) - 1


def new_id() -> str:
    """A new UUID version 7 (RFC 9562) as a string: the time in milliseconds, then 74
    random bits. Never derived from data.

    Time-ordered rather than random (version 4): new rows go to the end of every index on
    an id instead of to a random page of it. Creating customers writes about a quarter
    fewer pages, and a bulk import runs about a quarter faster (bench/README.md). The id
    shows when its row was created, to the millisecond, which the row's ``created_at``
    and its audit entry say anyway.
    """
    rand = int.from_bytes(os.urandom(10), "big")
    value = ((time.time_ns() // 1_000_000) << 80 | _V7_VERSION_AND_VARIANT
             | (rand << 2) & _RAND_A_MASK | rand & _RAND_B_MASK)
    return str(uuid.UUID(int=value))
