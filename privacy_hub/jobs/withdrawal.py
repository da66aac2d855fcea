"""The job a withdrawal or an objection queues (privacy_hub/jobs/follow_ups.py): erase
the customer's events that nothing covers any more (R-ERASE-03)."""

from __future__ import annotations

from typing import Any

from privacy_hub.db import transaction
from privacy_hub.jobs.handler import ClaimedJob, JobContext
from privacy_hub.usecases import withdrawal


def erase_events(context: JobContext, _job: ClaimedJob, payload: dict[str, Any]) -> None:
    """Erase, in one transaction, audited with the count."""
    with transaction(context.hub.sessions) as session:
        withdrawal.erase_uncovered_events(context.hub, session, payload["customer_id"],
                                          payload.get("purposes"), cause=payload["cause"])
