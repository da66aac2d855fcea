"""A customer's last activity (R-RET-02): a purchase, a portal sign-in, a consent decision
or a request of theirs. The inactivity pass (privacy_hub/usecases/inactivity.py) erases
customers without any for the configured period, after warning them.

Any activity also withdraws a pending warning: whoever is active again is no longer
inactive, and is warned afresh only after another full period. The hot paths pay one
UPDATE per customer per request, which changes nothing (and locks no row) for a customer
already seen active within ``RESOLUTION`` and not warned.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, case, or_, update
from sqlalchemy.orm import Session

from audit.prepared import Prepared, driver_cursor
from audit.sql import UTCDateTime
from privacy_hub.vault.models import Customer

#: how exact last_active_at is: for a period of years, a day is exact enough, and it
#: spares the customers table a write on every consent decision
RESOLUTION = timedelta(days=1)

_CUSTOMERS = cast(Table, Customer.__table__)
_c = _CUSTOMERS.c
_AT = bindparam("at", type_=UTCDateTime())
_STALE = bindparam("stale", type_=UTCDateTime())

_TOUCH = (
    update(_CUSTOMERS)
    .where(_c.id == bindparam("customer_id"), _c.status != "erased",
           or_(_c.last_active_at.is_(None), _c.last_active_at < _STALE,
               _c.inactivity_notice_at.is_not(None)))
    .values(last_active_at=case((or_(_c.last_active_at.is_(None), _c.last_active_at < _AT),
                                 _AT), else_=_c.last_active_at),
            inactivity_notice_at=None)
)
_TOUCH_RAW = Prepared(_TOUCH)


def _params(customer_id: str, at: datetime) -> dict[str, Any]:
    return {"customer_id": customer_id, "at": at, "stale": at - RESOLUTION}


def touch(session: Session, customer_id: str, at: datetime) -> None:
    """The customer was active at ``at``: their last activity moves there (never back)
    and a warning of inactivity is withdrawn. Erased customers are left alone. Callers
    commit."""
    session.connection(bind_arguments={"mapper": Customer}).execute(
        _TOUCH, _params(customer_id, at))


def touch_many(session: Session, last_seen: Mapping[str, datetime]) -> None:
    """``touch`` each customer at their own time, in id order (so concurrent requests
    lock rows in one order)."""
    for customer_id in sorted(last_seen):
        touch(session, customer_id, last_seen[customer_id])


def touch_on(conn: Connection, customer_id: str, at: datetime) -> None:
    """``touch`` inside a group-committed transaction (audit.Appender.run), on the
    connection's driver cursor."""
    _TOUCH_RAW.execute(driver_cursor(conn), conn.dialect, _params(customer_id, at))
