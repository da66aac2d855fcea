"""Appending to the log in the caller's transaction, and reading it back.

``record()`` only validates and queues. The entries are chained by a ``before_commit``
listener that ``install()`` puts on the session factory: it locks the head row, numbers
and hashes the queued entries, inserts them and moves the head, all inside the caller's
transaction. So an entry exists exactly when the change it describes was committed, and
no entry is ever stored unchained (DESIGN.md, "Transactions" and "Audit").

Concurrent writers serialise on the head: ``SELECT ... FOR UPDATE`` on PostgreSQL, the
write lock that ``BEGIN IMMEDIATE`` already holds on SQLite (privacy_hub/db.py). Both rely
on READ COMMITTED semantics on PostgreSQL (its default): under REPEATABLE READ a writer
that waited for the head would fail with a serialisation error instead. The head row also
holds the last entry's time and the last checkpoint's, so one locking read is all a writer
needs; the rest is prebuilt statements on the session's connection, the fewest round trips
while the head is locked.

Sessions that only read (installed with an ``Appender``) describe no change: their entries
are chained after their transaction, in a short one of the appender's, shared by every
read that commits meanwhile, and their commit returns once that one has committed.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, TypeVar, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, LargeBinary, Table, bindparam, event, exc, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from audit.chain import (
    GENESIS_HASH,
    Link,
    Unchained,
    canonical_json,
    checkpoint_message,
    link_entries,
)
from audit.clock import rfc3339, utcnow
from audit.errors import AuditError, AuditNotInstalled, InvalidAuditEntry, PersonalDataInAudit
from audit.models import AuditCheckpoint, AuditEntry, AuditHead

ACTOR_KINDS = frozenset({"system", "staff", "customer", "job", "cli"})
ACTION_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
MAX_DETAILS_BYTES = 4096
PENDING_KEY = "audit.pending"
APPEND_KEY = "audit.to_append"

_MAX_DEPTH = 16

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Actor:
    """Who did it: a kind and a pseudonymous id (a staff id, never an email)."""

    kind: str
    id: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ACTOR_KINDS:
            raise InvalidAuditEntry(f"unknown actor kind {self.kind!r}")
        if self.id is not None:
            _check_id("actor id", self.id, 128)


@dataclass(frozen=True)
class CheckpointSigner:
    """The Ed25519 key that signs checkpoints; ``key_id`` tells verifiers which key."""

    key_id: str
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        if not 0 < len(self.key_id) <= 64:
            raise ValueError("a checkpoint key id is 1 to 64 characters")


@dataclass(frozen=True)
class _Config:
    signer: CheckpointSigner | None
    checkpoint_every: int
    checkpoint_interval: timedelta | None
    appender: Appender | None = None


class _Pending(NamedTuple):
    entry: Unchained
    # The innermost savepoint open when it was recorded (None: the outer transaction),
    # so rolling back a savepoint drops only the entries recorded inside it.
    savepoint: SessionTransaction | None


# Keyed by the Session subclass each sessionmaker makes, which is also what its
# listeners are attached to.
_CONFIGS: weakref.WeakKeyDictionary[type[Session], _Config] = weakref.WeakKeyDictionary()


def install(
    factory: sessionmaker[Session],
    *,
    signer: CheckpointSigner | None = None,
    checkpoint_every: int = 1000,
    checkpoint_interval: timedelta | None = timedelta(minutes=5),
    appender: Appender | None = None,
) -> None:
    """Make sessions from ``factory`` chain their queued entries when they commit.

    With ``appender``, for a factory of sessions that only read: their entries describe
    no change, so they are chained by the appender, in a transaction of its own that it
    shares with other readers' entries (see Appender), and ``signer`` and the checkpoint
    settings are those of the appender's factory. The caller's commit returns once they
    are committed. Installing again on the same factory replaces the settings.
    """
    if checkpoint_every < 1:
        raise ValueError("checkpoint_every must be at least 1")
    if checkpoint_interval is not None and checkpoint_interval <= timedelta(0):
        raise ValueError("checkpoint_interval must be positive or None")
    session_class = factory.class_
    first = session_class not in _CONFIGS
    _CONFIGS[session_class] = _Config(signer, checkpoint_every, checkpoint_interval, appender)
    if first:
        event.listen(factory, "before_commit", _before_commit)
        event.listen(factory, "after_soft_rollback", _after_soft_rollback)
        event.listen(factory, "after_commit", _after_commit)
        event.listen(factory, "after_transaction_end", _after_transaction_end)


def record(
    session: Session,
    *,
    actor: Actor,
    action: str,
    customer_id: str | None = None,
    details: Mapping[str, object] | None = None,
) -> None:
    """Queue an audit entry in the caller's transaction; it is chained when that commits."""
    record_many(session, actor=actor, action=action, entries=[(customer_id, details)])


def record_many(
    session: Session,
    *,
    actor: Actor,
    action: str,
    entries: Iterable[tuple[str | None, Mapping[str, object] | None]],
) -> None:
    """Queue one entry per ``(customer_id, details)``, in order, as record() would.

    For bulk loads: a details object shared by several entries is checked and encoded
    once, and the action once.
    """
    if _config_for(session) is None:
        raise AuditNotInstalled("this session's factory was not passed to audit.install()")
    if len(action) > 64 or not ACTION_PATTERN.match(action):
        raise InvalidAuditEntry(f"action {action!r} is not like 'consent.granted'")
    items = list(entries)  # keeps every details object alive: their ids stay unique
    encoded: dict[int, str] = {}
    queued: list[Unchained] = []
    for customer_id, details in items:
        if customer_id is not None:
            _check_id("customer id", customer_id, 36)
        details_json = encoded.get(id(details))
        if details_json is None:
            details_json = encoded[id(details)] = encode_details(details)
        queued.append(Unchained(actor.kind, actor.id, action, customer_id, details_json))
    current = session.get_nested_transaction() or session.get_transaction()
    if current is None:
        # Begin now, so that the end of this transaction, however it ends, owns the entry.
        session.begin()
    elif not current.is_active:
        raise AuditError("the transaction is committed or failed; its entries are settled")
    pending: list[_Pending] = session.info.setdefault(PENDING_KEY, [])
    savepoint = session.get_nested_transaction()
    pending.extend(_Pending(entry, savepoint) for entry in queued)


def entry(actor: Actor, action: str, customer_id: str | None = None,
          details: Mapping[str, object] | None = None) -> Unchained:
    """An entry checked as record() checks it, for Appender works that chain their own."""
    if len(action) > 64 or not ACTION_PATTERN.match(action):
        raise InvalidAuditEntry(f"action {action!r} is not like 'consent.granted'")
    if customer_id is not None:
        _check_id("customer id", customer_id, 36)
    return Unchained(actor.kind, actor.id, action, customer_id, encode_details(details))


def encode_details(details: Mapping[str, object] | None) -> str:
    """Canonical JSON of ``details`` after checking they are small, plain and impersonal."""
    value: dict[str, object] = dict(details or {})
    _check_value(value, 0)
    text = canonical_json(value)
    if len(text.encode("utf-8")) > MAX_DETAILS_BYTES:
        raise InvalidAuditEntry(f"details exceed {MAX_DETAILS_BYTES} bytes")
    return text


def _check_id(what: str, value: str, max_len: int) -> None:
    if not value or len(value) > max_len:
        raise InvalidAuditEntry(f"{what} must be 1 to {max_len} characters")
    if "@" in value:
        raise PersonalDataInAudit(f"{what} looks like an email address")


def _check_value(value: object, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise InvalidAuditEntry("details are nested too deeply")
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidAuditEntry("details hold a non-finite number")
        return
    if isinstance(value, str):
        _check_text(value)
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_value(item, depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidAuditEntry("details keys must be strings")
            _check_text(key)
            _check_value(item, depth + 1)
        return
    raise InvalidAuditEntry(f"details hold a {type(value).__name__}, which is not JSON")


def _check_text(text: str) -> None:
    # R-AUD-02: minimal data. An "@" is the one unmistakable sign of an email address.
    if "@" in text:
        raise PersonalDataInAudit("details contain what looks like an email address")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidAuditEntry("details contain text that is not valid Unicode") from None


def _config_for(session: Session) -> _Config | None:
    return _config_for_class(type(session))


def _config_for_class(session_class: type[Session]) -> _Config | None:
    for cls in session_class.__mro__:
        config = _CONFIGS.get(cls)
        if config is not None:
            return config
    return None


def _before_commit(session: Session) -> None:
    pending: list[_Pending] | None = session.info.get(PENDING_KEY)
    if not pending:
        return  # sessions with nothing to audit take no lock
    config = _config_for(session)
    if config is None:  # uninstalled after record(): keep nothing unchained
        raise AuditNotInstalled("audit entries queued on a session that is not audited")
    # Flush the caller's changes first: flush hooks may record more entries, and the head
    # must be the last lock this transaction takes, or writers holding row locks deadlock.
    session.flush()
    if config.appender is not None:
        if session.in_nested_transaction():
            return  # a savepoint: its entries wait, with their savepoint, for the outer commit
        # Appended once this (read) transaction has ended (_after_commit): its snapshot
        # then no longer holds back the database while the entries are written.
        session.info.setdefault(APPEND_KEY, []).extend(p.entry for p in pending)
    else:
        _chain(session.connection(bind_arguments={"mapper": AuditHead}),
               [p.entry for p in pending], config)
    pending.clear()


def _after_soft_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    pending: list[_Pending] | None = session.info.get(PENDING_KEY)
    if not pending:
        return
    # A rollback undoes the database up to the nearest savepoint or the whole transaction.
    boundary = previous_transaction
    while not boundary.nested and boundary.parent is not None:
        boundary = boundary.parent
    if not boundary.nested:
        pending.clear()
        return
    pending[:] = [p for p in pending if not _inside(p.savepoint, boundary)]


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # after a savepoint, late entries still go out with the outer commit
    to_append: list[Unchained] | None = session.info.pop(APPEND_KEY, None)
    if to_append:
        config = _config_for(session)
        if config is None or config.appender is None:  # pragma: no cover - set in before_commit
            raise AuditNotInstalled("audit entries queued on a session that is not audited")
        # Raises if they could not be committed: the caller must not answer as if the
        # read were logged.
        config.appender.append(to_append)
    pending: list[_Pending] | None = session.info.get(PENDING_KEY)
    if not pending:
        return
    # Recorded after the chain was written (a before_commit listener that ran after ours):
    # they cannot join this transaction any more. Loud, since this is a programming error.
    actions = sorted({p.entry.action for p in pending})
    logger.error("audit entries recorded after chaining were dropped: %s", actions)
    pending.clear()


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        # The end of the outer transaction, also by close(): nothing queued outlives it.
        session.info.pop(PENDING_KEY, None)
        session.info.pop(APPEND_KEY, None)


def _inside(savepoint: SessionTransaction | None, boundary: SessionTransaction) -> bool:
    while savepoint is not None:
        if savepoint is boundary:
            return True
        savepoint = savepoint.parent
    return False


T = TypeVar("T")
#: a unit of work run in a group-committed transaction: given the connection and a dict
#: shared by the works of that transaction, it returns its result and its audit entries
Work = Callable[[Connection, dict[str, Any]], tuple[T, list[Unchained]]]


class _Job:
    __slots__ = ("appends_only", "error", "result", "work")

    def __init__(self, work: Work[Any], appends_only: bool = False) -> None:
        self.work = work
        self.appends_only = appends_only
        self.result: Any = None
        self.error: BaseException | None = None


class _Batch:
    def __init__(self, lock: threading.Lock) -> None:
        self.jobs: list[_Job] = []
        self.done = False
        #: its callers wait on it: woken when it is done, or (one) to write it
        self.cond = threading.Condition(lock)


class Appender:
    """Group commit: runs units of work of concurrent callers in write transactions of its
    own, one per batch, and chains their audit entries in that same transaction.

    Used for the entries of transactions that changed nothing (reads of personal data,
    ``append``) and for short writes that need nothing but the connection (``run``, e.g.
    creating a customer). A caller blocks until the transaction holding its work has
    committed, so an answer is never sent before its change and its entries are durable.
    Work arriving while a batch is being written waits and goes in the next one, so under
    load each commit (and each fsync, and each turn at the head's lock) carries many.
    If a batch fails, each of its works is run again in a transaction of its own, so one
    failing work fails only its own caller. One per process, for sessions of ``factory``
    (which must be installed).
    """

    #: longest a writer waits for announced callers (``upcoming``) to join its batch (s)
    GATHER_SECONDS = 0.001

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory
        self._conn: Connection | None = None
        self._lock = lock = threading.Lock()
        #: announced callers joined or gave up: wakes only a writer gathering them
        self._joined = threading.Condition(lock)
        self._open = _Batch(lock)
        self._writing = False
        self._upcoming = 0
        self._announced = threading.local()

    @contextmanager
    def upcoming(self) -> Iterator[None]:
        """Announce that this thread will call run() or append() within the block.

        A writer about to begin a batch waits a little (GATHER_SECONDS at most) for
        announced callers to join it rather than leave them for the next commit: under
        load, fewer and fuller commits (SQLite's write lock and the fsync are per commit).
        """
        before: int = getattr(self._announced, "count", 0)
        with self._lock:
            self._upcoming += 1
        self._announced.count = before + 1
        try:
            yield
        finally:
            left = self._announced.count - before  # not yet consumed by run()
            if left > 0:
                self._announced.count = before
                with self._lock:
                    self._upcoming -= left
                    self._joined.notify()

    def _gather(self) -> None:
        deadline = time.monotonic() + self.GATHER_SECONDS
        with self._lock:
            while self._upcoming > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._joined.wait(remaining)

    def append(self, items: list[Unchained]) -> None:
        """Chain ``items`` and return once they are committed (raise if that failed)."""
        self._run(_Job(lambda _conn, _shared: (None, items), appends_only=True))

    def run(self, work: Work[T]) -> T:
        """Run ``work`` in a group-committed transaction; its result once committed.

        ``work`` may run more than once (again alone when its batch failed), each time in
        a transaction that is then committed or rolled back whole; it must not keep state
        outside the database except in the shared dict.
        """
        return cast(T, self._run(_Job(work)))

    def _run(self, job: _Job) -> Any:
        announced: int = getattr(self._announced, "count", 0)
        with self._lock:
            if announced > 0:
                self._announced.count = announced - 1
                self._upcoming -= 1
                self._joined.notify()  # a writer may be gathering
            batch = self._open
            batch.jobs.append(job)
            while not batch.done:
                if not self._writing:  # this caller writes the batch it is in
                    self._writing = True
                    break
                batch.cond.wait()
            else:
                if job.error is not None:
                    raise job.error
                return job.result
        try:
            self._write_batch(batch)
        finally:
            with self._lock:
                if self._open is batch:  # failed before closing it
                    self._open = _Batch(self._lock)
                batch.done = True
                self._writing = False
                batch.cond.notify_all()  # its callers: done
                self._open.cond.notify()  # one caller of the next: write it
        if job.error is not None:
            raise job.error
        return job.result

    def _close(self, batch: _Batch) -> list[_Job]:
        """The batch's works from now on: later callers go into the next batch."""
        with self._lock:
            if self._open is batch:
                self._open = _Batch(self._lock)
            return list(batch.jobs)

    def _write_batch(self, batch: _Batch) -> None:
        jobs: list[_Job] = []
        try:
            if self._upcoming:
                self._gather()
            # The batch stays open while its writer waits for the database (SQLite's write
            # lock, held by another process's batch): whoever arrives meanwhile joins it.
            self._write(lambda: self._close(batch),
                        lambda: all(job.appends_only for job in batch.jobs))
        except BaseException as exc:
            jobs = self._close(batch)
            if len(jobs) == 1:
                jobs[0].error = exc
                return
            # One work may have failed them all: each again alone, to fail only its own.
            for job in jobs:
                try:
                    self._write(lambda job=job: [job])  # type: ignore[misc]
                except BaseException as own:
                    job.error = own

    def _write(self, jobs_now: Callable[[], list[_Job]],
               appends_only: Callable[[], bool] = lambda: False) -> None:
        """One transaction for the works ``jobs_now()`` returns once it has begun."""
        # A plain connection, not a session: a batch needs nothing of the ORM.
        config = _config_for_class(self._factory.class_)
        if config is None or config.appender is not None:
            raise AuditNotInstalled("an Appender needs a factory installed without one")
        conn = self._conn
        if conn is None:
            with self._factory() as session:
                engine = session.get_bind(mapper=AuditHead).engine
            # Kept for the next batches (one writer at a time): no pool checkout each time.
            conn = self._conn = engine.connect()
        try:
            with conn.begin():
                # Begun: on SQLite, BEGIN IMMEDIATE has waited for the write lock.
                # PostgreSQL waits at the head's lock, taken in _chain after the works
                # (so other processes' batches are not held up by them), or here first
                # when the batch only appends entries: it then stays open while it waits.
                if conn.dialect.name == "postgresql" and appends_only():
                    _lock_head(conn)
                jobs = jobs_now()
                shared: dict[str, Any] = {}
                entries: list[Unchained] = []
                for job in jobs:
                    job.result, items = job.work(conn, shared)
                    entries.extend(items)
                for finish in shared.pop(BEFORE_CHAIN, {}).values():
                    finish(conn)
                if entries:
                    _chain(conn, entries, config)
        except BaseException:
            self._conn = None  # e.g. the server dropped it: the next batch connects anew
            conn.close()
            raise


#: key of the shared dict of a batch: {name: fn(connection)} run after every work and
#: before the chain (e.g. one multi-row insert for the rows the works queued)
BEFORE_CHAIN = "before_chain"


class Prepared:
    """A Core statement compiled once per dialect and run on a DBAPI cursor.

    For the request hot paths: SQLAlchemy's execution path (events, cache key, parameter
    and result processing) costs several times what the driver does for a one-row
    statement. Bind values go through the columns' bind processors (datetimes as the
    dialect stores them); bytes go to the drivers as they are. Results come back as the
    driver's tuples: use it only for columns whose values need no conversion (ids,
    integers, bytes, text).
    """

    def __init__(self, stmt: Any) -> None:
        self.stmt = stmt
        self._plans: dict[str, tuple[str, list[str] | None, dict[str, Any], dict[str, Any]]] = {}

    def _plan(self, dialect: Any) -> tuple[str, list[str] | None, dict[str, Any], dict[str, Any]]:
        plan = self._plans.get(dialect.name)
        if plan is None:
            compiled = self.stmt.compile(dialect=dialect)
            names = list(compiled.positiontup or []) if compiled.positional else None
            defaults = dict(compiled.construct_params(_check=False))
            processors = {}
            for bind in compiled.binds.values():
                if isinstance(bind.type, LargeBinary):
                    continue
                proc = bind.type.dialect_impl(dialect).bind_processor(dialect)
                if proc is not None:
                    processors[bind.key] = proc
            plan = self._plans[dialect.name] = (compiled.string, names, defaults, processors)
        return plan

    def names(self, dialect: Any) -> list[str]:
        """The bind names in the driver's positional order ([] for named parameters)."""
        return self._plan(dialect)[1] or []

    def bind(self, dialect: Any, values: Mapping[str, Any]) -> tuple[str, Any]:
        """The SQL text and the driver's parameters for ``values``."""
        sql, names, defaults, processors = self._plan(dialect)
        params = {**defaults, **values}
        for key, proc in processors.items():
            value = params.get(key)
            if value is not None:
                params[key] = proc(value)
        return sql, (tuple(params[n] for n in names) if names is not None else params)

    def executemany(self, cursor: Any, dialect: Any, rows: Iterable[Mapping[str, Any]]) -> None:
        """Run it once per row of ``rows`` in one executemany (driver errors wrapped)."""
        sql = ""
        params = []
        for values in rows:
            sql, one = self.bind(dialect, values)
            params.append(one)
        if not params:
            return
        try:
            cursor.executemany(sql, params)
        except dialect.loaded_dbapi.Error as err:
            raise exc.DBAPIError.instance(sql, params, err, dialect.loaded_dbapi.Error,
                                          dialect=dialect, ismulti=True) from err

    def execute(self, cursor: Any, dialect: Any, values: Mapping[str, Any]) -> Any:
        """Run it on ``cursor`` (driver errors wrapped as SQLAlchemy's); the cursor."""
        sql, params = self.bind(dialect, values)
        try:
            cursor.execute(sql, params)
        except dialect.loaded_dbapi.Error as err:
            raise exc.DBAPIError.instance(sql, params, err, dialect.loaded_dbapi.Error,
                                          dialect=dialect) from err
        return cursor



# Built once: executing a prebuilt statement again costs no SQL compilation and no cache
# key, and going through the Connection skips the ORM's execution path (measured: about a
# third of a request's CPU went into chaining through the ORM).
_HEAD = cast(Table, AuditHead.__table__)
_ENTRIES = cast(Table, AuditEntry.__table__)
_CHECKPOINTS = cast(Table, AuditCheckpoint.__table__)
_READ_HEAD = (
    select(_HEAD.c.seq, _HEAD.c.hash, _HEAD.c.recorded_at, _HEAD.c.checkpoint_at)
    .where(_HEAD.c.id == 1)
    .with_for_update()
)
_INSERT_ENTRIES = insert(_ENTRIES)
_INSERT_CHECKPOINT = insert(_CHECKPOINTS)
_MOVE_HEAD = (
    update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values({name: bindparam(f"h_{name}", type_=_HEAD.c[name].type)
             for name in ("seq", "hash", "recorded_at", "checkpoint_at")})
)
# PostgreSQL: the entry and the head's move in one statement, so the head stays locked for
# one round trip less.
_MOVE_HEAD_WITH_ENTRY = _MOVE_HEAD.add_cte(
    insert(_ENTRIES)
    .values({c.name: bindparam(f"e_{c.name}", type_=c.type) for c in _ENTRIES.c})
    .cte("new_entry")
)


_READ_HEAD_RAW = Prepared(_READ_HEAD)
_MOVE_HEAD_RAW = Prepared(_MOVE_HEAD)
_MOVE_HEAD_WITH_ENTRY_RAW = Prepared(_MOVE_HEAD_WITH_ENTRY)
_INSERT_ENTRIES_RAW = Prepared(_INSERT_ENTRIES)
_INSERT_CHECKPOINT_RAW = Prepared(_INSERT_CHECKPOINT)
_TIME_READERS: dict[str, Callable[[Any], datetime | None]] = {}


def time_reader(dialect: Any) -> Callable[[Any], datetime | None]:
    """Converts a UTCDateTime value as the driver returns it (a Prepared statement's
    result) to an aware datetime."""
    reader = _TIME_READERS.get(dialect.name)
    if reader is None:
        proc = _HEAD.c.recorded_at.type.dialect_impl(dialect).result_processor(dialect, None)
        reader = _TIME_READERS[dialect.name] = proc or (lambda value: value)
    return reader


def _chain(conn: Connection, items: list[Unchained], config: _Config) -> None:
    # Through the driver, with statements compiled once: the chain runs while the head is
    # locked, so its statements' cost is paid by every writer waiting for it.
    dialect = conn.dialect
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    # The locking read returns all that appending needs: PostgreSQL's SELECT ... FOR
    # UPDATE also makes this statement's snapshot see the entries of the writer we
    # waited for.
    head_seq, head_hash, last_time, last_checkpoint_at = _lock_head(conn, cursor)
    if last_time is None and head_seq:
        # A head written before it kept the time (migration 0005 fills it in).
        last_time = conn.scalar(
            select(_ENTRIES.c.recorded_at).where(_ENTRIES.c.seq == head_seq))
    now = utcnow()
    # Clocks of several app servers can disagree a little; time never goes back in the chain.
    recorded_at = max(now, last_time) if last_time is not None else now
    links = link_entries(head_hash, head_seq + 1, recorded_at, items)
    last = links[-1]
    checkpoint = _checkpoint(config, head_seq, last, recorded_at, last_checkpoint_at)
    head = {
        "h_seq": last.seq,
        "h_hash": last.hash,
        "h_recorded_at": recorded_at,
        "h_checkpoint_at": recorded_at if checkpoint is not None else last_checkpoint_at,
    }
    if len(links) == 1 and dialect.name == "postgresql":
        entry = {f"e_{name}": value for name, value in links[0]._asdict().items()}
        _MOVE_HEAD_WITH_ENTRY_RAW.execute(cursor, dialect, {**head, **entry})
    else:
        _insert_links(conn, links, cursor)
        _MOVE_HEAD_RAW.execute(cursor, dialect, head)
    if checkpoint is not None:
        _INSERT_CHECKPOINT_RAW.execute(cursor, dialect, checkpoint)


#: the most entries inserted as one multi-row statement on PostgreSQL
_PG_MULTIROW_MAX = 64


def _insert_links(conn: Connection, links: list[Link], cursor: Any = None) -> None:
    """Insert chained entries in one executemany through the driver.

    SQLAlchemy's per-row parameter processing cost more than hashing the entries; they
    all share one ``recorded_at``, which is converted once.
    """
    dialect = conn.dialect
    if cursor is None:
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    if len(links) == 1:
        _INSERT_ENTRIES_RAW.execute(cursor, dialect, links[0]._asdict())
        return
    sql, params = _INSERT_ENTRIES_RAW.bind(dialect, links[0]._asdict())
    stored = params[_LINK_TIME] if isinstance(params, tuple) else params["recorded_at"]
    rows = [link._replace(recorded_at=stored) for link in links]
    if dialect.name == "postgresql" and _PG_COLUMNS_MATCH and len(rows) <= _PG_MULTIROW_MAX:
        # A group commit's few entries: one statement with a row of values per entry
        # (psycopg's executemany runs a pipeline, which costs more for a handful of rows).
        # More (a bulk load's thousands) go through COPY below.
        for start in range(0, len(rows), _PG_MULTIROW_MAX):
            chunk = rows[start:start + _PG_MULTIROW_MAX]
            # Only constants and placeholders go into the text; the values are parameters.
            text = (f"INSERT INTO {_ENTRIES.name} ({_PG_NAMES}) VALUES "  # noqa: S608
                    + ",".join([_PG_ROW] * len(chunk)))
            try:
                cursor.execute(text, [value for row in chunk for value in row])
            except dialect.loaded_dbapi.Error as err:
                raise exc.DBAPIError.instance(text, None, err, dialect.loaded_dbapi.Error,
                                              dialect=dialect) from err
        return
    if dialect.name == "postgresql" and _PG_COLUMNS_MATCH:
        # COPY: a sixth of the CPU of an executemany pipeline for a thousand entries, and
        # one statement to build instead of one with tens of thousands of parameters.
        try:
            with cursor.copy(_PG_COPY) as copy:
                for row in rows:
                    copy.write_row(row)
        except dialect.loaded_dbapi.Error as err:
            raise exc.DBAPIError.instance(_PG_COPY, None, err, dialect.loaded_dbapi.Error,
                                          dialect=dialect) from err
        return
    positional = isinstance(params, tuple) and list(_INSERT_ENTRIES_RAW.names(dialect)) == list(
        Link._fields)
    if not positional and isinstance(params, tuple):
        _INSERT_ENTRIES_RAW.executemany(cursor, dialect, [link._asdict() for link in links])
        return
    try:
        cursor.executemany(sql, rows if positional else [row._asdict() for row in rows])
    except dialect.loaded_dbapi.Error as err:
        raise exc.DBAPIError.instance(sql, None, err, dialect.loaded_dbapi.Error,
                                      dialect=dialect, ismulti=True) from err


_LINK_TIME = Link._fields.index("recorded_at")
_PG_COLUMNS_MATCH = {c.name for c in _ENTRIES.c} == set(Link._fields)
_PG_NAMES = ", ".join(Link._fields)
_PG_ROW = "(" + ", ".join(["%s"] * len(Link._fields)) + ")"
_PG_COPY = f"COPY {_ENTRIES.name} ({_PG_NAMES}) FROM STDIN"


def _checkpoint(
    config: _Config,
    head_seq: int,
    last: Link,
    recorded_at: datetime,
    last_checkpoint_at: datetime | None,
) -> dict[str, object] | None:
    """The checkpoint row to write with these links, if one is due."""
    signer = config.signer
    if signer is None:
        return None
    crossed = last.seq // config.checkpoint_every > head_seq // config.checkpoint_every
    stale = config.checkpoint_interval is not None and (
        last_checkpoint_at is None or recorded_at - last_checkpoint_at >= config.checkpoint_interval
    )
    if not (crossed or stale):
        return None
    message = checkpoint_message(last.seq, last.hash, recorded_at)
    signature = signer.private_key.sign(message)
    return {
        "seq": last.seq,
        "hash": last.hash,
        "signed_at": recorded_at,
        "key_id": signer.key_id,
        "signature": base64.urlsafe_b64encode(signature).rstrip(b"=").decode("ascii"),
    }


def _lock_head(conn: Connection, cursor: Any = None
               ) -> tuple[int, str, datetime | None, datetime | None]:
    """The head's seq, hash, last entry time and last checkpoint time, locked."""
    dialect = conn.dialect
    if cursor is None:
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    row = _READ_HEAD_RAW.execute(cursor, dialect, {}).fetchone()
    if row is None:
        _create_head(conn)
        row = _READ_HEAD_RAW.execute(cursor, dialect, {}).fetchone()
        if row is None:  # pragma: no cover - created just above
            raise AuditError("the audit head could not be created")
    seq, hash_, recorded_at, checkpoint_at = row
    read_time = time_reader(dialect)
    return int(seq), str(hash_), read_time(recorded_at), read_time(checkpoint_at)


def _create_head(conn: Connection) -> None:
    values: dict[str, Any] = {"id": 1, "seq": 0, "hash": GENESIS_HASH}
    dialect = conn.dialect.name
    # Two first writers may race to create the row; the loser's insert does nothing and
    # its SELECT ... FOR UPDATE then waits for the winner's row.
    if dialect == "postgresql":
        conn.execute(
            postgresql.insert(AuditHead).values(values).on_conflict_do_nothing(index_elements=["id"])
        )
    elif dialect == "sqlite":
        conn.execute(
            sqlite.insert(AuditHead).values(values).on_conflict_do_nothing(index_elements=["id"])
        )
    else:
        conn.execute(insert(AuditHead).values(values))


def entries(
    session: Session,
    *,
    since_seq: int | None = None,
    action: str | None = None,
    customer_id: str | None = None,
    limit: int = 50,
) -> list[AuditEntry]:
    """Entries in ascending seq after ``since_seq``, optionally one action or customer."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    stmt = select(AuditEntry).order_by(AuditEntry.seq).limit(limit)
    if since_seq is not None:
        stmt = stmt.where(AuditEntry.seq > since_seq)
    if action is not None:
        stmt = stmt.where(AuditEntry.action == action)
    if customer_id is not None:
        stmt = stmt.where(AuditEntry.customer_id == customer_id)
    return list(session.scalars(stmt))


def public_entry(entry: AuditEntry) -> dict[str, object]:
    """An entry as the API and exports show it."""
    details: object = json.loads(entry.details)
    return {
        "seq": entry.seq,
        "recorded_at": rfc3339(entry.recorded_at),
        "actor": {"type": entry.actor_type, "id": entry.actor_id},
        "action": entry.action,
        "customer_id": entry.customer_id,
        "details": details,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }
