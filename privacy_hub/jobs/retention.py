"""Scheduled jobs: end of legal retention, export deletion, DPO deadline reminders."""

from __future__ import annotations

from typing import Any

import audit
from audit.clock import utcnow
from privacy_hub.db import transaction
from privacy_hub.jobs.worker import ClaimedJob, Worker, handles
from privacy_hub.rights.adapters import REQUEST_REMINDER, RETENTION_PURGE
from privacy_hub.rights.exports import EXPORT_DELETE, Exports


@handles(RETENTION_PURGE)
def purge_retained(worker: Worker, _job: ClaimedJob, _payload: dict[str, Any]) -> None:
    with transaction(worker.hub.sessions) as session:
        worker.hub.vault.purge_retained(session, utcnow(), actor=audit.Actor("job", "retention"))


@handles(EXPORT_DELETE)
def delete_exports(worker: Worker, _job: ClaimedJob, _payload: dict[str, Any]) -> None:
    with transaction(worker.hub.sessions) as session:
        Exports(worker.hub).delete_due(session, utcnow())


@handles(REQUEST_REMINDER)
def remind_dpo(worker: Worker, _job: ClaimedJob, payload: dict[str, Any]) -> None:
    """R-DEAD-03: a reminder to the DPO mailbox, if the request is still open and its
    deadline has not moved (an extension schedules new reminders)."""
    from dsar.models import DataSubjectRequest
    from dsar.workflow import FINAL
    from privacy_hub.jobs import outbox

    dpo = worker.hub.settings.dpo_email
    with transaction(worker.hub.sessions) as session:
        req = session.get(DataSubjectRequest, payload["request_id"])
        if (req is None or req.status in {str(s) for s in FINAL} or not dpo
                or req.due_at.isoformat() != payload["due_at"]):
            return
        outbox.enqueue_mail(session, template="deadline_reminder", to_staff=dpo,
                            data={"request_id": req.id, "request_type": req.type,
                                  "due_at": req.due_at.date().isoformat()})
