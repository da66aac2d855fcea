"""A new request checked before it is stored: its type, its details (split into what may
be stored plainly and the personal data that must be sealed), its time and channel; and
the row it is stored as, its history line and its audit entry's details, the same whether
it is written through a session (dsar/requests.py) or group-committed on a connection
(privacy_hub/rights/intake.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from audit.ids import new_id
from consent import flags
from consent import purposes as registry
from consent.errors import UnknownPurpose
from consent.ledger import FUTURE_TOLERANCE
from dsar.deadlines import WorkingDays, due_at
from dsar.errors import InvalidRequest
from dsar.workflow import RequestStatus, RequestType

CHANNELS = ("api", "portal", "email", "letter", "phone", "console")
#: the details each type takes; the other types take none
_DETAILS = {RequestType.RECTIFICATION: {"changes"}, RequestType.RESTRICTION: {"ground"},
            RequestType.OBJECTION: {"purposes"}}


#: R-DSAR-05: a request for an address no customer has waits this long for the requester
#: to ask again with other details, then closes (never past its deadline)
UNIDENTIFIED_WAIT = timedelta(days=30)
#: the history event of a new request
RECEIVED = "received"


class Intake(NamedTuple):
    """A request as checked: its type, its plain details and its sealed details."""

    kind: RequestType
    plain: dict[str, Any]
    sealed: dict[str, Any]


def check(session: Session | None, *, type: str, details: Mapping[str, Any], channel: str,
          received_at: datetime | None, now: datetime) -> Intake:
    """The checked request, or InvalidRequest naming each field at fault."""
    kind = _request_type(type)
    plain, sealed = _split_details(session, kind, details)
    if received_at is not None and received_at > now + FUTURE_TOLERANCE:
        raise InvalidRequest({"received_at": ["lies in the future"]})
    if channel not in CHANNELS:
        raise InvalidRequest({"channel": ["one of " + ", ".join(CHANNELS)]})
    return Intake(kind, plain, sealed)


def _request_type(value: str) -> RequestType:
    try:
        return RequestType(value)
    except ValueError:
        raise InvalidRequest({"type": ["one of " + ", ".join(RequestType)]}) from None


def _split_details(session: Session | None, kind: RequestType,
                   details: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split details into what may be stored plainly and what must be sealed."""
    unknown = sorted(set(details) - _DETAILS.get(kind, set()))
    if unknown:
        raise InvalidRequest({f"details.{k}": [f"not a detail of a {kind} request"]
                              for k in unknown})
    if kind is RequestType.RECTIFICATION:
        changes = details.get("changes")
        if not isinstance(changes, Mapping) or not changes:
            raise InvalidRequest({"details.changes": ["name the fields to correct"]})
        return {"fields": sorted(changes)}, {"changes": dict(changes)}
    if kind is RequestType.RESTRICTION:
        ground = details.get("ground")
        if ground not in flags.RESTRICTION_GROUNDS:
            raise InvalidRequest({"details.ground": [
                "required, an Art. 18(1) ground: " + ", ".join(flags.RESTRICTION_GROUNDS)]})
        return {"ground": ground}, {}
    if kind is RequestType.OBJECTION:
        purposes = details.get("purposes")
        if purposes is not None:
            if session is None:
                raise ValueError("an objection naming purposes is checked with a session")
            bad = []
            for key in purposes:
                try:
                    registry.get(session, key)
                except UnknownPurpose:
                    bad.append(key)
            if bad:
                raise InvalidRequest({"details.purposes": [f"no such purpose: {k}"
                                                           for k in bad]})
            return {"purposes": list(purposes)}, {}
        return {"purposes": None}, {}
    return {}, {}


def new_request(checked: Intake, *, customer_id: str | None, channel: str,
                received: datetime, now: datetime, working_days: WorkingDays) -> dict[str, Any]:
    """The stored row (every column of ``requests``) of a request just received: pending
    verification, due one month from receipt (Art. 12(3)); ``details_ct`` is the
    caller's to seal."""
    return {"id": new_id(), "type": str(checked.kind),
            "status": str(RequestStatus.PENDING_VERIFICATION), "customer_id": customer_id,
            "channel": channel, "received_at": received,
            "due_at": due_at(received, working_days=working_days), "extension_months": 0,
            "extension_reason": None, "verified_at": None, "verification_method": None,
            "details": json.dumps(checked.plain), "details_ct": None, "contact_ct": None,
            "outcome": None, "rejection_ground": None, "rejection_reason": None,
            "rejected_at": None, "completed_at": None, "created_at": now, "updated_at": now}


def received_note(channel: str) -> str:
    """The note of a new request's history line."""
    return f"channel {channel}"


def received_details(row: Mapping[str, Any]) -> dict[str, Any]:
    """The details of a new request's audit entry ``request.received`` (no personal data)."""
    return {"request_id": row["id"], "type": row["type"], "channel": row["channel"]}


def closes_unidentified(now: datetime, due: datetime) -> datetime:
    """When a request nobody could be identified for closes (R-DSAR-05)."""
    return min(now + UNIDENTIFIED_WAIT, due)
