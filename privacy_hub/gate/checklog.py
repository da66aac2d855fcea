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
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session, sessionmaker

import audit
from audit.clock import utcnow
from audit.prepared import Prepared
from audit.sql import UTCDateTime

log = logging.getLogger(__name__)


class CheckRecord(NamedTuple):
    checked_at: datetime
    system: str
    customer_id: str | None
    purpose: str
    allowed: bool
    reason: str
    via: str


_COLUMNS = CheckRecord._fields
#: straight to the driver, one executemany: SQLAlchemy's bulk insert converted every
#: row's parameters one by one, which cost more than the checks it logged
_INSERT = Prepared(
    text(f"INSERT INTO consent_checks ({', '.join(_COLUMNS)}) "  # noqa: S608
         f"VALUES ({', '.join(':' + c for c in _COLUMNS)})")
    .bindparams(bindparam("checked_at", type_=UTCDateTime())))


class CheckLog:
    def __init__(self, sessions: sessionmaker[Session], *, interval: float = 0.5,
                 max_buffer: int = 200_000) -> None:
        self._sessions = sessions
        self._interval = interval
        self._buffer: deque[CheckRecord] = deque(maxlen=max_buffer)
        self._lock = threading.Lock()
        #: held from taking a batch until it is committed: one flush at a time
        self._flushing = threading.Lock()
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
            # a forked child has no writer thread: a lock a parent's flush held stays held
            self._flushing = threading.Lock()
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
        """Write what is buffered (one transaction, one audit entry). Returns once every
        check added before the call is committed, also those a concurrent flush took."""
        with self._flushing:
            return self._flush()

    def _flush(self) -> int:
        with self._lock:
            records = []
            while self._buffer:
                records.append(self._buffer.popleft())
        if not records:
            return 0
        digest = hashlib.sha256("".join([
            f"{r.checked_at.isoformat()}|{r.system}|{r.customer_id}|{r.purpose}|"
            f"{int(r.allowed)}|{r.reason}|{r.via}\n" for r in records]).encode())
        try:
            with self._sessions.begin() as session:
                conn = session.connection()
                plan = _INSERT.plan(conn.dialect)
                times = plan.processors.get("checked_at")
                if plan.names is not None:
                    if plan.names != _COLUMNS:
                        raise RuntimeError("unexpected parameter order")  # pragma: no cover
                    params: list[Any] = [(times(r[0]) if times else r[0], *r[1:]) for r in records]
                else:
                    params = [dict(zip(_COLUMNS, (times(r[0]) if times else r[0], *r[1:]),
                                       strict=True)) for r in records]
                conn.exec_driver_sql(plan.sql, params)
                audit.record(session, actor=audit.Actor("job", "checklog"),
                             action="consent.checks_logged",
                             details={"count": len(records), "sha256": digest.hexdigest()})
        except Exception:
            with self._lock:
                self._buffer.extendleft(reversed(records))
            raise
        return len(records)

    def stop(self) -> None:
        """Write what is left and stop the writer thread (at shutdown)."""
        self._stopped = True
        self._wake.set()
        atexit.unregister(self.flush)
        try:
            self.flush()
        except Exception:
            log.exception("writing the last consent checks failed")
