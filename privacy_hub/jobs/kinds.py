"""Every kind of background job and the handler that runs it, registered in one place.

A kind's name is defined where its jobs are queued (privacy_hub/jobs/outbox.py,
privacy_hub/jobs/retention.py, privacy_hub/jobs/follow_ups.py, privacy_hub/rights/exports.py,
privacy_hub/jobs/art14.py); the worker looks handlers up here only.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from privacy_hub.jobs import art14, outbox
from privacy_hub.jobs.delivery import deliver_webhook, send_mail
from privacy_hub.jobs.follow_ups import EVENTS_ERASURE
from privacy_hub.jobs.handler import Handler
from privacy_hub.jobs.retention import (
    REQUEST_REMINDER,
    REQUEST_UNIDENTIFIED,
    RETENTION_PURGE,
    delete_exports,
    purge_retained,
    remind_dpo,
)
from privacy_hub.jobs.unidentified import close_unidentified
from privacy_hub.jobs.withdrawal import erase_events
from privacy_hub.rights.exports import EXPORT_DELETE

HANDLERS: Mapping[str, Handler] = MappingProxyType({
    outbox.WEBHOOK: deliver_webhook,
    outbox.MAIL: send_mail,
    RETENTION_PURGE: purge_retained,
    EXPORT_DELETE: delete_exports,
    REQUEST_REMINDER: remind_dpo,
    REQUEST_UNIDENTIFIED: close_unidentified,
    art14.ART14_NOTICE: art14.send_notice,
    EVENTS_ERASURE: erase_events,
})
