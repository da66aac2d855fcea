"""Background job: destroy data kept under a legal retention duty once the duty ends."""

from __future__ import annotations

from typing import Any

import audit
from audit.db import utcnow
from privacy_hub.db import transaction
from privacy_hub.dsar_adapters import RETENTION_PURGE
from privacy_hub.exports import EXPORT_DELETE, Exports
from privacy_hub.worker import ClaimedJob, Worker, handles


@handles(RETENTION_PURGE)
def purge_retained(worker: Worker, _job: ClaimedJob, _payload: dict[str, Any]) -> None:
    with transaction(worker.hub.sessions) as session:
        worker.hub.vault.purge_retained(session, utcnow(), actor=audit.Actor("job", "retention"))


@handles(EXPORT_DELETE)
def delete_exports(worker: Worker, _job: ClaimedJob, _payload: dict[str, Any]) -> None:
    with transaction(worker.hub.sessions) as session:
        Exports(worker.hub).delete_due(session, utcnow())
