"""The outbox: background jobs (webhook deliveries, mails, ...) written in the caller's
transaction.

Lower layers ``emit`` domain events into the session (consent/domain_events.py).
``install()`` makes the outbox a participant of the session factory's unit of work
(audit/unit_of_work.py) that turns them into rows of ``outbox_jobs`` at the commit, inside
the same transaction: one webhook delivery for each registered system allowed to see the
event, or a mail for a private event (double opt-in). So a job exists exactly when the
change it describes was committed (DESIGN.md "Transactions", "Background work");
privacy_hub/jobs/worker.py runs it at least once. The webhook deliveries as the API and
the console list and retry them are privacy_hub/jobs/deliveries.py.

Every payload is sealed under the hub's ``app_secrets`` key with associated data naming
the job, so the table holds no personal data and no token in clear. A finished job keeps
its metadata for the DPO and drops its payload (storage limitation, Art. 5(1)(e)).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import (
    CheckConstraint,
    Connection,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    String,
    insert,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from audit import unit_of_work
from audit.clock import rfc3339, utcnow
from audit.ids import new_id
from audit.prepared import Prepared, driver_cursor
from audit.sql import UTCDateTime, new_metadata
from consent import domain_events
from consent.domain_events import DomainEvent, JSONValue
from privacy_hub.jobs import follow_ups
from privacy_hub.jobs.follow_ups import follow_up
from privacy_hub.models import System
from privacy_hub.vault import crypto

log = logging.getLogger(__name__)

#: Webhook event types named in API.md; any other "consent.", "customer." or "request."
#: type is a webhook too, unless it is private (below).
WEBHOOK_TYPES = frozenset({"consent.changed", "customer.restricted", "customer.erased",
                           "customer.rectified", "request.created",
                           # queued by staff for one system (usecases/systems.py), never emitted
                           "hub.test"})
WEBHOOK_PREFIXES = ("consent.", "customer.", "request.")
#: Private events never leave as webhooks: each becomes a mail with this template.
MAIL_EVENTS = {"consent.confirmation_requested": "consent_confirmation"}

STATUSES = ("pending", "delivered", "dead", "cancelled")
WEBHOOK = "webhook"
MAIL = "mail"

#: Set after a commit that wrote jobs, so an in-process worker starts at once.
jobs_added = threading.Event()

_NAME = "outbox"
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


def install(factory: sessionmaker[Session], *, sealing_key: bytes) -> None:
    """Make sessions from ``factory`` write their queued events to the outbox at commit,
    after the audit log if that was installed first (privacy_hub/hub.py).

    ``sealing_key`` is the hub's ``app_secrets`` key. Installing again replaces it.
    """
    unit_of_work.install(factory, _NAME, _Outbox(AESGCM(sealing_key)))


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


def _aead(session_class: type[Session]) -> AESGCM:
    outbox = unit_of_work.installed(session_class, _NAME, _Outbox)
    if outbox is None:
        raise OutboxError("this session's factory was not passed to outbox.install()")
    return outbox.aead


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
    row = _row(_aead(type(session)), kind, payload, now=utcnow(), run_at=run_at,
               customer_id=customer_id)
    session.execute(insert(OutboxJob), [row])
    wake_worker_after_commit(session)
    return str(row["id"])


class Job(NamedTuple):
    """A job to queue: its kind, its payload (sealed when written), when it runs (None:
    now) and the customer it is about."""

    kind: str
    payload: Mapping[str, Any]
    run_at: datetime | None = None
    customer_id: str | None = None


def mail_job(*, template: str, customer_id: str | None = None, to_staff: str | None = None,
             data: Mapping[str, JSONValue], secrets: Mapping[str, str] | None = None,
             run_at: datetime | None = None) -> Job:
    """A mail to a customer (address decrypted when it is sent) or to staff, as a job.

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
    return Job(MAIL, payload, run_at, customer_id)


def enqueue_job(session: Session, job: Job) -> str:
    """Queue ``job`` in the caller's transaction (enqueue); returns its id."""
    return enqueue(session, job.kind, job.payload, job.run_at, customer_id=job.customer_id)


def enqueue_mail(session: Session, *, template: str, customer_id: str | None = None,
                 to_staff: str | None = None, data: Mapping[str, JSONValue],
                 secrets: Mapping[str, str] | None = None,
                 run_at: datetime | None = None) -> str:
    """Queue a mail (mail_job) in the caller's transaction; returns the job's id."""
    return enqueue_job(session, mail_job(template=template, customer_id=customer_id,
                                         to_staff=to_staff, data=data, secrets=secrets,
                                         run_at=run_at))


def enqueue_many(session: Session, kind: str, items: Sequence[tuple[str, Mapping[str, Any]]],
                 run_at: datetime | None = None, *, event_type: str | None = None) -> list[str]:
    """Queue one job per (customer id, payload) of ``items`` in one insert (a caller with
    many passes them in batches); returns their ids, in order."""
    aead, now = _aead(type(session)), utcnow()
    rows = [_row(aead, kind, payload, now=now, run_at=run_at, customer_id=cid,
                 event_type=event_type) for cid, payload in items]
    if rows:
        session.execute(insert(OutboxJob), rows)
        wake_worker_after_commit(session)
    return [str(row["id"]) for row in rows]


def enqueue_mails(session: Session, *, template: str, customer_ids: Sequence[str],
                  data: Mapping[str, JSONValue], event_type: str | None = None) -> int:
    """Queue the same mail to each of ``customer_ids`` (enqueue_many); returns how many.
    ``event_type`` names what the jobs are about, as an emitted event's mail does."""
    from privacy_hub.jobs.mail import TEMPLATES

    if template not in TEMPLATES:
        raise OutboxError(f"unknown mail template {template!r}")
    return len(enqueue_many(session, MAIL, [
        (cid, {"template": template, "customer_id": cid, "to_staff": None,
               "data": dict(data), "secrets": {}}) for cid in customer_ids],
        event_type=event_type))


def enqueue_webhook(session: Session, *, system_id: str, event_type: str,
                    data: Mapping[str, JSONValue], customer_id: str | None = None,
                    run_at: datetime | None = None) -> str:
    """Queue one webhook for one system (a retry a system asked for by reporting
    ``failed``), not for every subscriber as an emitted event is. Returns the job id."""
    if not is_webhook_type(event_type):
        raise OutboxError(f"{event_type!r} is not a webhook event type")
    now = utcnow()
    payload = {"type": event_type, "created_at": rfc3339(now), "data": dict(data)}
    row = _row(_aead(type(session)), WEBHOOK, payload, now=now, run_at=run_at,
               system_id=system_id, event_id=new_id(), event_type=event_type,
               customer_id=customer_id)
    session.execute(insert(OutboxJob), [row])
    wake_worker_after_commit(session)
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
_SUBSCRIBERS_RAW = Prepared(_SUBSCRIBERS)


def _subscribers(session: Session | Connection) -> list[_Subscriber]:
    if isinstance(session, Connection):
        # On the driver's cursor: a group-committed batch reads them with the write lock
        # held (id and purposes are text: nothing to convert).
        cursor = driver_cursor(session)
        rows = _SUBSCRIBERS_RAW.execute(cursor, session.dialect, {}).fetchall()
    else:
        rows = session.execute(_SUBSCRIBERS).all()
    return [_Subscriber(system_id, None if purposes is None else frozenset(json.loads(purposes)))
            for system_id, purposes in rows]


def _rows_for(aead: AESGCM, ev: DomainEvent, now: datetime, subscribers: list[_Subscriber],
              probe: tuple[Any, Dialect]) -> list[dict[str, Any]]:
    """The jobs of one event: its webhooks or its mail, and the job it brings with it
    (privacy_hub/jobs/follow_ups.py) when it has something to do (read with ``probe``,
    a driver cursor in the change's transaction and its dialect), all in that
    transaction."""
    rows = _delivery_rows(aead, ev, now, subscribers)
    extra = follow_up(ev)
    if extra is not None and follow_ups.needed(*probe, *extra):
        kind, payload = extra
        rows.append(_row(aead, kind, payload, now=now, customer_id=ev.customer_id))
    return rows


def _delivery_rows(aead: AESGCM, ev: DomainEvent, now: datetime,
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


# -- at commit ------------------------------------------------------------------------

@dataclass(frozen=True)
class _Outbox:
    """The outbox's part in a session factory's commits (audit/unit_of_work.py)."""

    aead: AESGCM

    def settle(self, session: Session) -> None:
        """Write the queued events' jobs in the committing transaction."""
        if not domain_events.queued(session):
            return  # nothing queued costs nothing
        session.flush()  # flush hooks may emit more events
        now = utcnow()
        rows: list[dict[str, Any]] = []
        subscribers: list[_Subscriber] | None = None
        conn = session.connection(bind_arguments={"mapper": OutboxJob})
        probe = (driver_cursor(conn), conn.dialect)
        while queued := domain_events.take(session):
            for ev in queued:
                if subscribers is None and is_webhook_type(ev.type):
                    subscribers = _subscribers(session)
                rows += _rows_for(self.aead, ev, now, subscribers or [], probe)
        if rows:
            session.execute(insert(OutboxJob), rows)
            wake_worker_after_commit(session)

    def committed(self, session: Session) -> None:
        """Wake an in-process worker if jobs were written; drop (loudly) late events."""
        late = domain_events.take(session)
        if late:
            # Emitted by a before_commit listener that ran after ours: a programming error.
            log.error("events emitted after the outbox was written were dropped: %s",
                      sorted({ev.type for ev in late}))
        if unit_of_work.notes(session).pop(_WROTE, False):
            jobs_added.set()


def wake_worker_after_commit(session: Session) -> None:
    """Wake an in-process worker once this session's transaction has committed."""
    unit_of_work.notes(session)[_WROTE] = True
