"""The log of gate answers (R-GATE-08), written in batches off the request path.

Each process buffers answers and a background thread writes them every half second;
each batch is sealed into the audit chain by an entry carrying its row range and
digest. A crash loses at most the answers of the last half second; never a write.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

import audit
from audit.db import utcnow
from consent.models import ConsentCheck

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CheckRecord:
    checked_at: datetime
    system: str
    customer_id: str | None
    purpose: str
    allowed: bool
    reason: str
    via: str


class CheckLog:
    def __init__(self, sessions: sessionmaker[Session], *, interval: float = 0.5,
                 max_buffer: int = 200_000) -> None:
        self._sessions = sessions
        self._interval = interval
        self._buffer: deque[CheckRecord] = deque(maxlen=max_buffer)
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._wake = threading.Event()
        self._stopped = False

    def add(self, system: str, customer_id: str | None, purpose: str, allowed: bool,
            reason: str, via: str) -> None:
        self._buffer.append(CheckRecord(utcnow(), system, customer_id, purpose, allowed,
                                        reason, via))
        if self._pid != os.getpid() and not self._stopped:
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            thread = threading.Thread(target=self._run, name="privacy-hub-checklog", daemon=True)
            thread.start()
            atexit.register(self.flush)

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stopped:
                return
            try:
                self.flush()
            except Exception:
                log.exception("writing the consent check log failed; will retry")

    def flush(self) -> int:
        """Write what is buffered (one transaction, one audit entry)."""
        with self._lock:
            records = []
            while self._buffer:
                records.append(self._buffer.popleft())
        if not records:
            return 0
        rows = [{"checked_at": r.checked_at, "system": r.system, "customer_id": r.customer_id,
                 "purpose": r.purpose, "allowed": r.allowed, "reason": r.reason, "via": r.via}
                for r in records]
        digest = hashlib.sha256()
        for r in records:
            digest.update(f"{r.checked_at.isoformat()}|{r.system}|{r.customer_id}|{r.purpose}|"
                          f"{int(r.allowed)}|{r.reason}|{r.via}\n".encode())
        try:
            with self._sessions.begin() as session:
                session.execute(insert(ConsentCheck), rows)
                audit.record(session, actor=audit.Actor("job", "checklog"),
                             action="consent.checks_logged",
                             details={"count": len(rows), "sha256": digest.hexdigest()})
        except Exception:
            with self._lock:
                self._buffer.extendleft(reversed(records))
            raise
        return len(rows)

    def stop(self) -> None:
        """Write what is left and stop the writer thread (at shutdown)."""
        self._stopped = True
        self._wake.set()
        atexit.unregister(self.flush)
        try:
            self.flush()
        except Exception:
            log.exception("writing the last consent checks failed")
