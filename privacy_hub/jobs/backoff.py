"""Exponential backoff: how long a failed job (or a system's failed part of a request)
waits before it is tried again."""

from __future__ import annotations


def backoff_delay(attempts: int, *, base: float, cap: float, jitter: float) -> float:
    """Seconds to wait after ``attempts`` failed attempts; ``jitter`` in [0, 1) picks a
    point between half and all of ``base * 2**(attempts - 1)`` (at most ``cap``)."""
    delay = min(cap, base * 2.0 ** min(max(attempts - 1, 0), 60))
    return delay * (0.5 + jitter / 2)
