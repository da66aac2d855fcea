"""R-DEAD-05, Art. 14 GDPR: a customer whose data came from someone other than them (an
import with a named source, ``privacy-hub import FILE --source NAME``) is told where it
came from, what categories of data are held and why, and how to object.

The import schedules the notice (``schedule``): a job NOTICE_DELAY after the data was
obtained, and never later than one month (Art. 14(3)(a)), with a row in
``art14_notices`` while it is pending. The first direct-marketing use of the customer's
data sends it at once (Art. 14(3)(b)): a consent check or a purpose-bound read for a
``direct_marketing`` purpose asks ``pending_for_marketing`` (one primary-key read of a
table holding only the notices not yet sent) and, only when one is pending, brings its
job forward. The job hands the mail to the outbox, audits that the notice went out
(counts and names, no personal data) and removes the row, in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.orm import Session

import audit
from audit.clock import rfc3339, utcnow
from audit.prepared import Prepared
from consent import purposes as registry
from consent.domain_events import JSONValue
from dsar.deadlines import add_months
from privacy_hub.db import transaction
from privacy_hub.gate.checks import Reader
from privacy_hub.jobs import outbox
from privacy_hub.jobs.handler import ClaimedJob, JobCancelled, JobContext
from privacy_hub.jobs.outbox import OutboxJob
from privacy_hub.languages import LANGUAGES
from privacy_hub.models import Art14Notice
from privacy_hub.vault.errors import CustomerNotFound
from privacy_hub.vault.models import PERSONAL_FIELDS

if TYPE_CHECKING:
    from privacy_hub.hub import Hub  # the hub wires the jobs: a type, not an import cycle

ART14_NOTICE = "art14_notice"
#: the notice goes this long after the import unless a marketing use comes first
NOTICE_DELAY = timedelta(days=3)
ACTOR = audit.Actor("job", "art14")
_CHUNK = 900  # SQLite before 3.32 takes at most 999 parameters

# The purpose first: for any purpose that is not direct marketing the join ends at once.
_PENDING = Prepared(text(
    "SELECT n.job_id FROM purposes p JOIN art14_notices n ON n.customer_id = :customer_id "
    "WHERE p.key = :purpose AND p.direct_marketing = :yes AND n.triggered_at IS NULL"))


def schedule(session: Session, customer_ids: Iterable[str], *, source: str,
             now: datetime | None = None) -> int:
    """Schedule the notice for each customer without one pending (in the caller's
    transaction); returns how many were scheduled."""
    now = now or utcnow()
    due = add_months(now, 1)
    wanted = list(dict.fromkeys(customer_ids))
    pending: set[str] = set()
    for start in range(0, len(wanted), _CHUNK):
        pending.update(session.scalars(select(Art14Notice.customer_id).where(
            Art14Notice.customer_id.in_(wanted[start:start + _CHUNK]))))
    todo = [cid for cid in wanted if cid not in pending]
    job_ids = outbox.enqueue_many(session, ART14_NOTICE,
                                  [(cid, {"customer_id": cid}) for cid in todo],
                                  run_at=min(now + NOTICE_DELAY, due))
    if todo:
        session.execute(insert(Art14Notice), [
            {"customer_id": cid, "source": source, "obtained_at": now, "due_at": due,
             "job_id": job_id, "triggered_at": None}
            for cid, job_id in zip(todo, job_ids, strict=True)])
    return len(todo)


def pending_for_marketing(reader: Reader, customer_id: str, purpose: str) -> str | None:
    """The job of the customer's notice if it is still pending, not yet brought forward,
    and ``purpose`` is direct marketing; else None."""
    rows = reader.rows(_PENDING, {"customer_id": customer_id, "purpose": purpose, "yes": True})
    return str(rows[0][0]) if rows else None


def bring_forward(session: Session, customer_id: str, job_id: str) -> None:
    """Send the pending notice now: the first direct-marketing use came before its time."""
    now = utcnow()
    session.execute(update(OutboxJob).where(
        OutboxJob.id == job_id, OutboxJob.status == "pending").values(
        next_attempt_at=now))
    session.execute(update(Art14Notice).where(
        Art14Notice.customer_id == customer_id, Art14Notice.triggered_at.is_(None)).values(
        triggered_at=now))
    outbox.wake_worker_after_commit(session)


def on_marketing_use(session: Session, customer_id: str, purpose: str) -> None:
    """In a purpose-bound read's transaction: bring the notice forward if one is pending
    and ``purpose`` is direct marketing."""
    job_id = pending_for_marketing(Reader.of_session(session), customer_id, purpose)
    if job_id is not None:
        bring_forward(session, customer_id, job_id)


def on_marketing_check(hub: Hub, customer_id: str, job_id: str) -> None:
    """After a consent check outside any transaction found a pending notice: bring it
    forward in a short transaction of its own."""
    with transaction(hub.sessions) as session:
        bring_forward(session, customer_id, job_id)


def send_notice(context: JobContext, job: ClaimedJob, payload: dict[str, Any]) -> None:
    """Hand the customer's Art. 14 notice to the mail outbox, audit it, and end the
    pending notice; nothing when it was sent already, cancelled when they were erased."""
    hub = context.hub
    customer_id = str(payload["customer_id"])
    with transaction(hub.sessions) as session:
        notice = session.get(Art14Notice, customer_id, with_for_update=True)
        if notice is None or notice.job_id != job.id:
            return  # sent already (or another import's job carries it)
        erased = _tell(hub, session, notice)
        session.execute(delete(Art14Notice).where(Art14Notice.customer_id == customer_id))
    if erased:
        raise JobCancelled("the customer was erased")


def _tell(hub: Hub, session: Session, notice: Art14Notice) -> bool:
    """Queue the mail and audit it; True (and nothing queued) if the customer is gone."""
    try:
        row = hub.vault.get_row(session, notice.customer_id)
    except CustomerNotFound:
        return True
    if row.status == "erased":
        return True
    # Which fields are held shows in which cells exist: nothing is decrypted here.
    held = [name for name in PERSONAL_FIELDS if getattr(row, f"{name}_ct") is not None]
    purposes = [p for p in registry.all_purposes(session) if set(p.fields) & set(held)]

    def titles(language: str) -> str:
        return ", ".join(p.translations[language].title if language in p.translations
                         else p.title for p in purposes)

    data: dict[str, JSONValue] = {
        "source": notice.source, "categories": list(held),
        "purposes": ", ".join(p.title for p in purposes) or None,
        "translated": {"purposes": {lang: titles(lang) for lang in LANGUAGES if purposes}}}
    outbox.enqueue_mail(session, template="art14_notice", customer_id=notice.customer_id,
                        data=data)
    audit.record(session, actor=ACTOR, action="customer.art14_notified",
                 customer_id=notice.customer_id,
                 details={"source": notice.source, "categories": list(held),
                          "purposes": [p.key for p in purposes],
                          "trigger": "direct_marketing" if notice.triggered_at else "scheduled",
                          "obtained_at": rfc3339(notice.obtained_at),
                          "due_at": rfc3339(notice.due_at)})
    return False
