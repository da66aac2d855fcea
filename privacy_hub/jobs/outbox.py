"""The outbox: background jobs (webhook deliveries, mails, ...) written in the caller's
transaction.

Lower layers ``emit`` domain events into the session (consent/domain_events.py). ``install()``
puts a ``before_commit`` listener on the session factory that turns them into rows of
``outbox_jobs`` inside the same transaction: one webhook delivery for each registered
system allowed to see the event, or a mail for a private event (double opt-in). So a
job exists exactly when the change it describes was committed (DESIGN.md
"Transactions", "Background work"); privacy_hub/jobs/worker.py runs it at least once.

Every payload is sealed under the hub's ``app_secrets`` key with associated data naming
the job, so the table holds no personal data and no token in clear. A finished job keeps
its metadata for the DPO and drops its payload (storage limitation, Art. 5(1)(e)).
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import (
    CheckConstraint,
    Connection,
    Index,
    Integer,
    LargeBinary,
    String,
    and_,
    event,
    insert,
    or_,
    select,
)
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    SessionTransaction,
    mapped_column,
    sessionmaker,
)

import audit
from audit import log as audit_log
from audit.clock import rfc3339, utcnow
from audit.ids import new_id
from audit.sql import UTCDateTime, new_metadata
from consent import domain_events
from consent.domain_events import DomainEvent, JSONValue
from privacy_hub.models import System
from privacy_hub.vault import crypto

log = logging.getLogger(__name__)

#: Webhook event types named in API.md; any other "consent.", "customer." or "request."
#: type is a webhook too, unless it is private (below).
WEBHOOK_TYPES = frozenset({"consent.changed", "customer.restricted", "customer.erased",
                           "customer.rectified", "request.created"})
WEBHOOK_PREFIXES = ("consent.", "customer.", "request.")
#: Private events never leave as webhooks: each becomes a mail with this template.
MAIL_EVENTS = {"consent.confirmation_requested": "consent_confirmation"}

STATUSES = ("pending", "delivered", "dead", "cancelled")
WEBHOOK = "webhook"
MAIL = "mail"

#: Set after a commit that wrote jobs, so an in-process worker starts at once.
jobs_added = threading.Event()

_MARKS = "outbox.savepoint_marks"
_WROTE = "outbox.wrote"


class OutboxBase(DeclarativeBase):
    metadata = new_metadata()


class OutboxJob(OutboxBase):
    """One unit of background work; kept after it finished so it can be inspected."""

    __tablename__ = "outbox_jobs"
    __table_args__ = (
        # The worker's claim: pending jobs by due time.
        Index("ix_outbox_jobs_due", "status", "next_attempt_at"),
        Index("ix_outbox_jobs_kind_created", "kind", "created_at"),
        CheckConstraint("status IN ('pending', 'delivered', 'dead', 'cancelled')",
                        name="status"),
        CheckConstraint("status != 'delivered' OR delivered_at IS NOT NULL",
                        name="delivered_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    #: webhook | mail | any kind a handler is registered for in privacy_hub/jobs/worker.py
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    #: webhooks: the receiving system (no foreign key: deliveries outlive their system)
    system_id: Mapped[str | None] = mapped_column(String(36), index=True)
    #: webhooks: the event's id, the same for every system and every retry
    event_id: Mapped[str | None] = mapped_column(String(36), index=True)
    event_type: Mapped[str | None] = mapped_column(String(64))
    customer_id: Mapped[str | None] = mapped_column(String(36), index=True)
    #: JSON, sealed under the app-secrets key (AAD names the job); NULL once finished
    payload_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: NULL once finished
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: the claiming worker's lease; a job whose worker died is due again when it ends
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    locked_by: Mapped[str | None] = mapped_column(String(64))
    #: what went wrong last, without personal data ("HTTP 500", "timeout", ...)
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OutboxError(Exception):
    """Base of the outbox's errors."""


class DeliveryNotRetryable(OutboxError):
    """Only a dead delivery can be sent again."""

    def __init__(self, status: str) -> None:
        super().__init__(f"the delivery is {status}; only a dead delivery can be retried")
        self.status = status


@dataclass(frozen=True)
class _Config:
    aead: AESGCM


_CONFIGS: weakref.WeakKeyDictionary[type[Session], _Config] = weakref.WeakKeyDictionary()


def install(factory: sessionmaker[Session], *, sealing_key: bytes) -> None:
    """Make sessions from ``factory`` write their queued events to the outbox at commit.

    ``sealing_key`` is the hub's ``app_secrets`` key. Installing again replaces it.
    """
    session_class = factory.class_
    first = session_class not in _CONFIGS
    _CONFIGS[session_class] = _Config(AESGCM(sealing_key))
    if first:
        event.listen(factory, "before_commit", _before_commit)
        event.listen(factory, "after_transaction_create", _after_transaction_create)
        event.listen(factory, "after_soft_rollback", _after_soft_rollback)
        event.listen(factory, "after_commit", _after_commit)
        event.listen(factory, "after_transaction_end", _after_transaction_end)


# -- sealing ------------------------------------------------------------------------

def _aad(job_id: str) -> bytes:
    return b"outbox_jobs.payload|" + job_id.encode()


def seal_payload(aead: AESGCM, job_id: str, payload: Mapping[str, Any]) -> bytes:
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return crypto.wrap(aead, raw, _aad(job_id))


def open_payload(aead: AESGCM, job_id: str, blob: bytes) -> dict[str, Any]:
    """The job's payload; DecryptionError if it was not sealed for this job."""
    value: dict[str, Any] = json.loads(crypto.unwrap(aead, blob, _aad(job_id)))
    return value


def _config(session: Session) -> _Config:
    for cls in type(session).__mro__:
        config = _CONFIGS.get(cls)
        if config is not None:
            return config
    raise OutboxError("this session's factory was not passed to outbox.install()")


# -- enqueueing ---------------------------------------------------------------------

def _row(aead: AESGCM, kind: str, payload: Mapping[str, Any], *, now: datetime,
         run_at: datetime | None = None, **columns: Any) -> dict[str, Any]:
    job_id = new_id()
    return {"id": job_id, "kind": kind, "status": "pending", "attempts": 0,
            "payload_ct": seal_payload(aead, job_id, payload),
            "next_attempt_at": run_at or now, "created_at": now, "system_id": None,
            "event_id": None, "event_type": None, "customer_id": None, **columns}


def enqueue(session: Session, kind: str, payload: Mapping[str, Any],
            run_at: datetime | None = None, *, customer_id: str | None = None) -> str:
    """Queue a job in the caller's transaction; returns its id. ``payload`` is sealed.

    The worker runs it at ``run_at`` (default: now) with the handler registered for
    ``kind`` in privacy_hub/jobs/worker.py.
    """
    if not 0 < len(kind) <= 32:
        raise OutboxError("a job kind is 1 to 32 characters")
    row = _row(_config(session).aead, kind, payload, now=utcnow(), run_at=run_at,
               customer_id=customer_id)
    session.execute(insert(OutboxJob), [row])
    session.info[_WROTE] = True
    return str(row["id"])


def enqueue_mail(session: Session, *, template: str, customer_id: str | None = None,
                 to_staff: str | None = None, data: Mapping[str, JSONValue],
                 secrets: Mapping[str, str] | None = None,
                 run_at: datetime | None = None) -> str:
    """Queue a mail to a customer (address decrypted when it is sent) or to staff.

    ``to_staff`` is an address (e.g. ``settings.dpo_email``). ``secrets`` (a one-time
    ``token``, or a ready ``link``) are sealed like the rest of the payload.
    """
    from privacy_hub.jobs.mail import TEMPLATES

    if template not in TEMPLATES:
        raise OutboxError(f"unknown mail template {template!r}")
    if (customer_id is None) == (to_staff is None):
        raise OutboxError("give exactly one of customer_id and to_staff")
    payload = {"template": template, "customer_id": customer_id, "to_staff": to_staff,
               "data": dict(data), "secrets": dict(secrets or {})}
    return enqueue(session, MAIL, payload, run_at, customer_id=customer_id)


def enqueue_webhook(session: Session, *, system_id: str, event_type: str,
                    data: Mapping[str, JSONValue], customer_id: str | None = None,
                    run_at: datetime | None = None) -> str:
    """Queue one webhook for one system (a retry a system asked for by reporting
    ``failed``), not for every subscriber as an emitted event is. Returns the job id."""
    if not is_webhook_type(event_type):
        raise OutboxError(f"{event_type!r} is not a webhook event type")
    now = utcnow()
    payload = {"type": event_type, "created_at": rfc3339(now), "data": dict(data)}
    row = _row(_config(session).aead, WEBHOOK, payload, now=now, run_at=run_at,
               system_id=system_id, event_id=new_id(), event_type=event_type,
               customer_id=customer_id)
    session.execute(insert(OutboxJob), [row])
    session.info[_WROTE] = True
    return str(row["id"])


def is_webhook_type(event_type: str) -> bool:
    return event_type not in MAIL_EVENTS and (
        event_type in WEBHOOK_TYPES or event_type.startswith(WEBHOOK_PREFIXES))


@dataclass(frozen=True)
class _Subscriber:
    id: str
    purposes: frozenset[str] | None

    def sees(self, purpose: str | None) -> bool:
        return self.purposes is None or purpose is None or purpose in self.purposes


_SUBSCRIBERS = (select(System.id, System.purposes)
                .where(System.webhook_url.is_not(None), System.disabled_at.is_(None))
                .order_by(System.id))
_SUBSCRIBERS_RAW = audit_log.Prepared(_SUBSCRIBERS)


def _subscribers(session: Session | Connection) -> list[_Subscriber]:
    if isinstance(session, Connection):
        # On the driver's cursor: a group-committed batch reads them with the write lock
        # held (id and purposes are text: nothing to convert).
        cursor = session.connection.driver_connection.cursor()  # type: ignore[union-attr]
        rows = _SUBSCRIBERS_RAW.execute(cursor, session.dialect, {}).fetchall()
    else:
        rows = session.execute(_SUBSCRIBERS).all()
    return [_Subscriber(system_id, None if purposes is None else frozenset(json.loads(purposes)))
            for system_id, purposes in rows]


def _rows_for(aead: AESGCM, ev: DomainEvent, now: datetime,
              subscribers: list[_Subscriber]) -> list[dict[str, Any]]:
    if len(ev.type) > 64:
        raise OutboxError("an event type is at most 64 characters")
    template = MAIL_EVENTS.get(ev.type)
    if template is not None:
        token = ev.private.get("token")
        if ev.customer_id is None or not isinstance(token, str):
            raise OutboxError(f"a {ev.type} event needs a customer_id and a private token")
        payload = {"template": template, "customer_id": ev.customer_id, "to_staff": None,
                   "data": {"purpose": ev.purpose, **ev.data}, "secrets": {"token": token}}
        return [_row(aead, MAIL, payload, now=now, event_type=ev.type,
                     customer_id=ev.customer_id)]
    if not is_webhook_type(ev.type):
        log.debug("event type %s is not delivered anywhere", ev.type)
        return []
    event_id = new_id()
    payload = {"type": ev.type, "created_at": rfc3339(now), "data": dict(ev.data)}
    return [_row(aead, WEBHOOK, payload, now=now, system_id=s.id, event_id=event_id,
                 event_type=ev.type, customer_id=ev.customer_id)
            for s in subscribers if s.sees(ev.purpose)]


_BATCH_ROWS = "outbox.rows"
_INSERT_JOB_RAW = audit_log.Prepared(insert(OutboxJob))
_BATCH_SUBSCRIBERS = "outbox.subscribers"


def write_events(factory: sessionmaker[Session], conn: Connection, shared: dict[str, Any],
                 queued: list[DomainEvent]) -> bool:
    """The outbox rows of ``queued``, for a work of a group-committed transaction
    (audit.Appender.run on sessions of ``factory``, which must be installed here): as
    ``_before_commit`` does for a session, in the same transaction as the work. The
    subscribers are read once per transaction, inside it (so a system registered before
    it began gets its events), and the rows of all its works go in one insert just before
    the audit chain. True if it queued rows: then call ``jobs_written()`` once the work
    has committed (not otherwise: a woken in-process worker takes the write lock).
    """
    config = _CONFIGS.get(factory.class_)
    if config is None:
        raise OutboxError("this session's factory was not passed to outbox.install()")
    aead = config.aead
    now = utcnow()
    wrote = False
    rows: list[dict[str, Any]] | None = shared.get(_BATCH_ROWS)
    if rows is None:
        rows = shared[_BATCH_ROWS] = []

        def finish(c: Connection) -> None:
            if rows:
                cursor = c.connection.driver_connection.cursor()  # type: ignore[union-attr]
                _INSERT_JOB_RAW.executemany(cursor, c.dialect, rows)

        shared.setdefault(audit_log.BEFORE_CHAIN, {})["outbox"] = finish
    for ev in queued:
        subscribers: list[_Subscriber] = []
        if is_webhook_type(ev.type):
            if _BATCH_SUBSCRIBERS not in shared:
                shared[_BATCH_SUBSCRIBERS] = _subscribers(conn)
            subscribers = shared[_BATCH_SUBSCRIBERS]
        new = _rows_for(aead, ev, now, subscribers)
        rows.extend(new)
        wrote = wrote or bool(new)
    return wrote


def jobs_written() -> None:
    """Wake an in-process worker after a group-committed transaction wrote jobs."""
    jobs_added.set()


# -- the session hooks ----------------------------------------------------------------

def _before_commit(session: Session) -> None:
    if not domain_events.pending(session) or session.in_nested_transaction():
        # Nothing queued costs nothing. A savepoint's events wait for the outer commit,
        # so that rolling back an enclosing savepoint can still drop exactly them.
        return
    aead = _config(session).aead
    session.flush()  # flush hooks may emit more events
    now = utcnow()
    rows: list[dict[str, Any]] = []
    subscribers: list[_Subscriber] | None = None
    while queued := domain_events.take(session):
        for ev in queued:
            if subscribers is None and is_webhook_type(ev.type):
                subscribers = _subscribers(session)
            rows += _rows_for(aead, ev, now, subscribers or [])
    if rows:
        session.execute(insert(OutboxJob), rows)
        session.info[_WROTE] = True


def _after_transaction_create(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        marks: dict[SessionTransaction, int] = session.info.setdefault(_MARKS, {})
        marks[transaction] = len(domain_events.pending(session))


def _after_soft_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    boundary = previous_transaction
    while not boundary.nested and boundary.parent is not None:
        boundary = boundary.parent
    if not boundary.nested:
        domain_events.discard(session)
        return
    marks: dict[SessionTransaction, int] = session.info.get(_MARKS, {})
    mark = marks.pop(boundary, None)
    if mark is not None:
        # Events are only appended until the outer commit, so the ones emitted inside
        # the rolled-back savepoint are exactly those past its mark.
        del domain_events.pending(session)[mark:]


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return
    late = domain_events.take(session)
    if late:
        # Emitted by a before_commit listener that ran after ours: a programming error.
        log.error("events emitted after the outbox was written were dropped: %s",
                  sorted({ev.type for ev in late}))
    if session.info.pop(_WROTE, False):
        jobs_added.set()


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    # A savepoint's mark stays until the outer transaction ends: SQLAlchemy ends a
    # savepoint before it reports the savepoint's rollback to _after_soft_rollback.
    if transaction.parent is None:
        domain_events.discard(session)
        session.info.pop(_MARKS, None)
        session.info.pop(_WROTE, None)


# -- webhook deliveries, for the API and the console ------------------------------------

Delivery = tuple[OutboxJob, str | None]
"""A webhook delivery and the name of its system (None once the system is gone)."""


def _deliveries() -> Any:
    return (select(OutboxJob, System.name)
            .outerjoin(System, System.id == OutboxJob.system_id)
            .where(OutboxJob.kind == WEBHOOK))


def list_deliveries(session: Session, *, status: str | None = None, system: str | None = None,
                    before: tuple[datetime, str] | None = None,
                    limit: int = 50) -> list[Delivery]:
    """Webhook deliveries, newest first; ``before`` is the (created_at, id) of the last seen."""
    stmt = _deliveries().order_by(OutboxJob.created_at.desc(), OutboxJob.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(OutboxJob.status == status)
    if system is not None:
        stmt = stmt.where(System.name == system)
    if before is not None:
        at, job_id = before
        stmt = stmt.where(or_(OutboxJob.created_at < at,
                              and_(OutboxJob.created_at == at, OutboxJob.id < job_id)))
    return [(job, name) for job, name in session.execute(stmt)]


def get_delivery(session: Session, delivery_id: str) -> Delivery | None:
    row = session.execute(_deliveries().where(OutboxJob.id == delivery_id)).first()
    return None if row is None else (row[0], row[1])


def retry_delivery(session: Session, delivery_id: str, *,
                   actor: audit.Actor) -> Delivery | None:
    """Send a dead delivery again now, with a fresh set of attempts (None: no such id)."""
    row = session.execute(_deliveries().where(OutboxJob.id == delivery_id)
                          .with_for_update(of=OutboxJob)).first()
    if row is None:
        return None
    job, system = row
    if job.status != "dead":
        raise DeliveryNotRetryable(job.status)
    job.status, job.attempts, job.next_attempt_at = "pending", 0, utcnow()
    job.locked_until = job.locked_by = None
    session.info[_WROTE] = True
    audit.record(session, actor=actor, action="webhook.retried",
                 details={"delivery_id": job.id, "event_id": job.event_id, "system": system})
    session.flush()
    return job, system


def public_delivery(job: OutboxJob, system: str | None) -> dict[str, Any]:
    """A delivery as the API shows it: metadata only, never the payload."""
    return {"id": job.id, "event_id": job.event_id, "type": job.event_type, "system": system,
            "status": job.status, "attempts": job.attempts, "last_error": job.last_error,
            "next_attempt_at": rfc3339(job.next_attempt_at) if job.status == "pending" else None,
            "delivered_at": rfc3339(job.delivered_at), "created_at": rfc3339(job.created_at)}
