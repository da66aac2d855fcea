"""DPO actions on a customer's processing flags: lifting a restriction (Art. 18(3)) and
recording compelling grounds against an objection (Art. 21(1))."""

from __future__ import annotations

from sqlalchemy.orm import Session

import audit
from consent import flags
from privacy_hub.hub import Hub
from privacy_hub.jobs import outbox
from privacy_hub.usecases.errors import Conflict


def lift_restriction(hub: Hub, session: Session, customer_id: str, *, note: str,
                     actor: audit.Actor) -> None:
    """Lift a restriction; the subject is told first (Art. 18(3))."""
    hub.vault.get_row(session, customer_id)
    if not flags.flags_for(session, customer_id).restricted:
        raise Conflict("This customer's processing is not restricted.")
    outbox.enqueue_mail(session, template="restriction_lifting", customer_id=customer_id,
                        data={"note": note})
    session.flush()
    flags.lift_restriction(session, customer_id, actor=actor)


def record_compelling_grounds(hub: Hub, session: Session, customer_id: str, purpose: str, *,
                              grounds: str, actor: audit.Actor) -> None:
    """Compelling legitimate grounds that override an objection (Art. 21(1)); never for
    direct marketing."""
    hub.vault.get_row(session, customer_id)
    flags.record_compelling_grounds(session, customer_id, purpose, grounds=grounds, actor=actor)
