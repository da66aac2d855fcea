"""A new request that still has to be verified, group-committed like a consent write.

The common intake (a shop passes on a customer's request, by email or customer id) is a
handful of rows: the request, its history line, the verification token's hash, the mails
and reminders as outbox jobs, the customer's last activity and the audit entry. Through a
session it paid for the ORM, a re-read of the request and a commit (an fsync) of its own,
holding SQLite's write lock meanwhile. Here everything that needs no lock is done first
(the checks, the subject's lookup on a read connection, the token, the sealed job
payloads, the deadlines) and the rows go in one short unit of work of the process's group
committer (audit.Appender.run): its commit, shared with concurrent writes, is durable
before the caller answers. The rows are those dsar/requests.py writes (dsar/intake.py,
dsar/verification.py and the jobs of privacy_hub/rights/adapters.py make both).

Anything else takes the session's path (``submit_grouped`` returns None): a request
verified at once (it is carried out in the same transaction), an objection (it takes
effect at once), sealed details (a rectification's values), a customer id that is not
an active customer's (the session's path refuses it), or a candidate's key that is not
loaded in this process.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, insert, select

import audit
from audit.clock import rfc3339, utcnow
from audit.prepared import Prepared, driver_cursor, insert_of
from dsar import intake, verification
from dsar.deadlines import reminder_times
from dsar.models import DataSubjectRequest, RequestHistory, VerificationToken
from dsar.ports import Receipt
from dsar.workflow import RequestType
from privacy_hub.db import driver_reader
from privacy_hub.hub import Hub
from privacy_hub.jobs import grouped_outbox
from privacy_hub.rights.adapters import (
    close_unidentified_job,
    no_account_mail,
    reminder_jobs,
    verification_mail,
)
from privacy_hub.vault import activity
from privacy_hub.vault.blind_index import NormalisationError, normalise_email
from privacy_hub.vault.models import Customer
from privacy_hub.vault.service import HotPath

_HISTORY = cast(Table, RequestHistory.__table__)
_INSERT_REQUEST_RAW = insert_of(cast(Table, DataSubjectRequest.__table__))
# Without the id: the database numbers history lines (a NULL would be refused on PostgreSQL).
_INSERT_HISTORY_RAW = Prepared(insert(_HISTORY).values(
    {c.name: bindparam(c.name, type_=c.type) for c in _HISTORY.c if c.name != "id"}))
_INSERT_TOKEN_RAW = insert_of(cast(Table, VerificationToken.__table__))
_STATUS_RAW = Prepared(select(Customer.status).where(Customer.id == bindparam("customer_id")))


class _Fallback(Exception):
    """The request needs the session's path."""


def submit_grouped(hub: Hub, hot: HotPath, *, type: str, actor: audit.Actor,
                   email: str | None, customer_id: str | None,
                   details: Mapping[str, Any] | None, channel: str,
                   received_at: datetime | None, language: str | None
                   ) -> dict[str, Any] | None:
    """Receive an unverified request in a group-committed transaction: its id, type,
    status, receipt and due dates once that is durable (as dsar's ``Requests.submit``
    answers), or None, having written nothing, when it needs the session's path (see the
    module). InvalidRequest as ``Requests.submit``."""
    if type == RequestType.OBJECTION:
        return None
    now = utcnow()
    checked = intake.check(None, type=type, details=dict(details or {}), channel=channel,
                           received_at=received_at, now=now)
    if checked.sealed:
        return None
    try:
        subject = _subject(hub, hot, email, customer_id)
    except _Fallback:
        return None
    row = intake.new_request(checked, customer_id=subject, channel=channel,
                             received=received_at or now, now=now,
                             working_days=hub.working_days)
    history = {"request_id": row["id"], "from_status": None, "to_status": row["status"],
               "event": intake.RECEIVED, "at": now, "actor_type": actor.kind,
               "actor_id": actor.id, "note": intake.received_note(channel)}
    receipt = Receipt(row["id"], row["type"], row["received_at"], row["due_at"], language)
    jobs = reminder_jobs(row["id"], row["due_at"],
                         reminder_times(row["due_at"], working_days=hub.working_days))
    token_row: dict[str, Any] | None = None
    if subject is None:
        # Only the mailbox's owner learns that nobody is known under it (R-DSAR-05).
        closes_at = intake.closes_unidentified(now, row["due_at"])
        told = no_account_mail(receipt, email or "", closes_at)
        jobs += [*([told] if told is not None else []),
                 close_unidentified_job(row["id"], closes_at)]
    else:
        token, token_row = verification.new_token(row["id"], now)
        jobs.append(verification_mail(receipt, subject, token))
    entry = audit.entry(actor, "request.received", subject, intake.received_details(row))

    def work(conn: Connection, shared: dict[str, Any]) -> tuple[bool | None, list[Any]]:
        cursor, dialect = driver_cursor(conn), conn.dialect
        if subject is not None:
            # Read again under the write lock: erased since the lookup, it is the session's.
            found = _STATUS_RAW.execute(cursor, dialect, {"customer_id": subject}).fetchone()
            if found is None or found[0] == "erased":
                return None, []
        _INSERT_REQUEST_RAW.execute(cursor, dialect, row)
        _INSERT_HISTORY_RAW.execute(cursor, dialect, history)
        if token_row is not None:
            _INSERT_TOKEN_RAW.execute(cursor, dialect, token_row)
        if subject is not None:
            activity.touch_on(conn, subject, now)  # R-RET-02
        return grouped_outbox.queue_on(hub.sessions, conn, shared, jobs), [entry]

    wrote = hot.writer.run(work)
    if wrote is None:
        return None
    if wrote:
        grouped_outbox.jobs_written()
    return {"id": row["id"], "type": row["type"], "status": row["status"],
            "received_at": rfc3339(row["received_at"]), "due_at": rfc3339(row["due_at"]),
            "extended": False}


def _subject(hub: Hub, hot: HotPath, email: str | None, customer_id: str | None) -> str | None:
    """The active customer the request is about (None: nobody under this email), read
    without a transaction; _Fallback when the session's path must decide."""
    with driver_reader(hot.read_engine) as (cursor, dialect):
        if customer_id is None:
            try:
                normalised = normalise_email(email or "")
            except NormalisationError:
                return None
            # The vault's own candidate search on a driver cursor (as its hot lookup).
            matches = hub.vault._candidates_on(cursor, dialect, "email", normalised)
            if matches is None:
                raise _Fallback  # a key-encryption key not loaded here
            if not matches:
                return None
            customer_id = matches[0]
        found = _STATUS_RAW.execute(cursor, dialect, {"customer_id": customer_id}).fetchone()
    if found is None or found[0] == "erased":
        if email is not None:
            return None  # as find_by_email: an erased customer is nobody
        raise _Fallback  # refused on the session's path (no active customer with this id)
    return customer_id

