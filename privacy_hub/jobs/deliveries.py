"""Webhook deliveries as the API and the console show them: list, look up, send again.

Deliveries are outbox jobs of kind ``webhook`` (privacy_hub/jobs/outbox.py); these are
the queries over them, apart from the job queue itself.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

import audit
from audit.clock import rfc3339, utcnow
from privacy_hub.jobs import outbox
from privacy_hub.jobs.outbox import WEBHOOK, OutboxError, OutboxJob
from privacy_hub.models import System


class DeliveryNotRetryable(OutboxError):
    """Only a dead delivery can be sent again."""

    def __init__(self, status: str) -> None:
        super().__init__(f"the delivery is {status}; only a dead delivery can be retried")
        self.status = status


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
    outbox.wake_worker_after_commit(session)
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
