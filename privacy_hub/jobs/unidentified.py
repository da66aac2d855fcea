"""The scheduled end of a request for an address no customer has (R-DSAR-05): the
requester was told so, and invited to ask again with other details; without an answer the
request is rejected on the ground ``identity_not_found``, audited as the job's act."""

from __future__ import annotations

from typing import Any

from privacy_hub.db import transaction
from privacy_hub.jobs.handler import ClaimedJob, JobContext
from privacy_hub.usecases import requests


def close_unidentified(context: JobContext, _job: ClaimedJob, payload: dict[str, Any]) -> None:
    """Reject the request if it still waits for someone to be identified; else nothing."""
    with transaction(context.hub.sessions) as session:
        requests.close_unidentified(context.hub, session, payload["request_id"])
