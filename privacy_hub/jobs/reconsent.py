"""R-CONSENT-09: a material change of a purpose is told, before it takes effect, to every
customer whose consent it invalidates.

Called in the transaction that raises the purpose's version, so the mails are queued
exactly when the change is committed: no customer is ever refused under the new version
without their mail queued. Many customers are queued in batches (one insert each), read
by keyset from the consent state's audience index; one audit entry counts them, naming
no one.
"""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

import audit
from audit.clock import utcnow
from consent.domain_events import JSONValue
from consent.models import ConsentState
from consent.purposes import Purpose
from privacy_hub.jobs import outbox

TEMPLATE = "purpose_reconsent"
#: customers queued per insert: bounded memory and statement size for any count
BATCH = 1000


def notify_reconsent(session: Session, purpose: Purpose, *, actor: audit.Actor,
                     batch: int | None = None) -> int:
    """Queue the mail to every customer whose consent to the version before ``purpose``'s
    new one still stood (granted, not expired): those this change invalidates. A consent
    to an even older version was invalidated, and told, by an earlier change. Returns
    how many."""
    now, batch = utcnow(), batch or BATCH
    translations: dict[str, JSONValue] = {
        "purpose_title": {lang: t.title for lang, t in purpose.translations.items()},
        "description": {lang: t.description for lang, t in purpose.translations.items()}}
    data: dict[str, JSONValue] = {"purpose": purpose.key, "version": purpose.version,
                                  "purpose_title": purpose.title,
                                  "description": purpose.description,
                                  "translated": translations}
    stmt = (select(ConsentState.customer_id)
            .where(ConsentState.purpose == purpose.key, ConsentState.status == "granted",
                   ConsentState.purpose_version == purpose.version - 1,
                   or_(ConsentState.expires_at.is_(None), ConsentState.expires_at > now))
            .order_by(ConsentState.customer_id).limit(batch))
    count, after = 0, ""
    while ids := list(session.scalars(stmt.where(ConsentState.customer_id > after))):
        count += outbox.enqueue_mails(session, template=TEMPLATE, customer_ids=ids, data=data,
                                      event_type="purpose.reconsent")
        after = ids[-1]
        if len(ids) < batch:
            break
    audit.record(session, actor=actor, action="purpose.reconsent_notified",
                 details={"purpose": purpose.key, "version": purpose.version,
                          "notified": count})
    return count
