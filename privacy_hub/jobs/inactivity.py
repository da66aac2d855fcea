"""The inactivity pass in the workers' housekeeping (R-RET-02): warn, then erase,
customers inactive for the configured period (privacy_hub/usecases/inactivity.py)."""

from __future__ import annotations

import logging
from datetime import datetime

from privacy_hub.hub import Hub
from privacy_hub.usecases.inactivity import run_inactivity

log = logging.getLogger(__name__)


def housekeeping(hub: Hub, now: datetime, *, worker: str) -> int:
    """One pass at ``now``; returns how many customers were warned or erased. Never
    raises: a failure is logged (its type only) and the next housekeeping tries again,
    as every pass picks up whatever is due."""
    try:
        counts = run_inactivity(hub, now)
    except Exception as exc:
        log.error("worker %s: %s in the inactivity pass; trying again later", worker,
                  type(exc).__name__)
        return 0
    if counts.warned or counts.erased or counts.failed:
        log.info("worker %s: inactivity pass warned %d, erased %d, failed %d", worker,
                 counts.warned, counts.erased, counts.failed)
    return counts.warned + counts.erased
