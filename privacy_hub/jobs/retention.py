"""Scheduled jobs: end of legal retention, export deletion, DPO deadline reminders, the
end of proof of consent (a sweep of the daily retention pass, which every worker's
``Worker.housekeeping`` starts when it is due), and the kind of the job that closes
unidentified requests (privacy_hub/jobs/unidentified.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import audit
from audit.clock import utcnow
from consent import proof
from dsar.models import DataSubjectRequest
from dsar.workflow import FINAL
from privacy_hub.db import transaction
from privacy_hub.jobs import outbox
from privacy_hub.jobs.handler import ClaimedJob, JobContext
from privacy_hub.rights.exports import Exports

if TYPE_CHECKING:
    from privacy_hub.hub import Hub

#: job kinds: data kept under a legal duty is destroyed when its hold ends; the DPO is
#: reminded of a request's deadline; a request nobody was identified for closes (R-DSAR-05)
RETENTION_PURGE = "retention_purge"
REQUEST_REMINDER = "request_reminder"
REQUEST_UNIDENTIFIED = "request_unidentified"


def purge_retained(context: JobContext, _job: ClaimedJob, _payload: dict[str, Any]) -> None:
    """Destroy the retained data whose legal hold has ended."""
    with transaction(context.hub.sessions) as session:
        context.hub.vault.purge_retained(session, utcnow(),
                                         actor=audit.Actor("job", "retention"))


def purge_consent_proof(hub: Hub, now: datetime, *, batch: int = 500,
                        tick: Callable[[int], None] | None = None) -> int:
    """R-CREC-06: purge the evidence of consents that ended more than
    PRIVACY_HUB_CONSENT_PROOF_RETENTION_DAYS before ``now`` (and any left of erased
    customers), in batches of a transaction each; each purge audited with counts.
    Returns how many were purged; ``tick`` is told how many after each batch. (A sweep
    of the retention pass: privacy_hub/retention/stores.py.)"""
    days = hub.settings.consent_proof_retention_days
    cutoff = now - timedelta(days=days)
    actor = audit.Actor("job", "retention")
    total = 0
    with transaction(hub.sessions) as session:
        total += hub.proof.purge_erased(session, now, actor=actor)
    if tick is not None and total:
        tick(total)
    while True:
        with transaction(hub.sessions) as session:
            done = proof.purge_due(session, now, cutoff, actor=actor, retention_days=days,
                                   limit=batch)
        total += done
        if tick is not None and done:
            tick(done)
        if done < batch:
            return total


def delete_exports(context: JobContext, _job: ClaimedJob, _payload: dict[str, Any]) -> None:
    """Delete the export files whose retention period has ended."""
    with transaction(context.hub.sessions) as session:
        Exports(context.hub).delete_due(session, utcnow())


def remind_dpo(context: JobContext, _job: ClaimedJob, payload: dict[str, Any]) -> None:
    """R-DEAD-03: a reminder to the DPO mailbox (a week before the deadline, or that it
    has passed), if the request is still open and its deadline has not moved (an
    extension schedules new reminders)."""
    hub = context.hub
    dpo = hub.settings.dpo_email
    with transaction(hub.sessions) as session:
        req = session.get(DataSubjectRequest, payload["request_id"])
        if (req is None or req.status in {str(s) for s in FINAL} or not dpo
                or req.due_at.isoformat() != payload["due_at"]):
            return
        overdue = payload.get("reminder") == "overdue"
        outbox.enqueue_mail(session, template="deadline_overdue" if overdue
                            else "deadline_reminder", to_staff=dpo,
                            data={"request_id": req.id, "request_type": req.type,
                                  "due_at": req.due_at.date().isoformat()})
