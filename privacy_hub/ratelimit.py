"""A small in-process sliding-window rate limiter for request intake.

Keys are hashed, so no email address sits in memory as a key. Limits are per process
(`privacy-hub serve` runs several), which is enough to stop floods and enumeration attempts.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque


class RateLimiter:
    def __init__(self) -> None:
        self._hits: dict[bytes, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, *, limit: int, window: float, now: float | None = None) -> float | None:
        """Count one hit; None if allowed, else the seconds until the next one is."""
        now = time.monotonic() if now is None else now
        digest = hashlib.sha256(key.encode()).digest()[:16]
        with self._lock:
            hits = self._hits.setdefault(digest, deque())
            while hits and hits[0] <= now - window:
                hits.popleft()
            if len(hits) >= limit:
                return max(0.0, hits[0] + window - now)
            hits.append(now)
            if len(self._hits) > 100_000:  # forget idle keys rather than grow without bound
                for k in [k for k, v in self._hits.items() if not v or v[-1] <= now - window]:
                    del self._hits[k]
            return None
