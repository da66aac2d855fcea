"""A new request checked before it is stored: its type, its details (split into what may
be stored plainly and the personal data that must be sealed), its time and channel."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from consent import flags
from consent import purposes as registry
from consent.errors import UnknownPurpose
from consent.ledger import FUTURE_TOLERANCE
from dsar.errors import InvalidRequest
from dsar.workflow import RequestType

CHANNELS = ("api", "portal", "email", "letter", "phone", "console")
#: the details each type takes; the other types take none
_DETAILS = {RequestType.RECTIFICATION: {"changes"}, RequestType.RESTRICTION: {"ground"},
            RequestType.OBJECTION: {"purposes"}}


class Intake(NamedTuple):
    """A request as checked: its type, its plain details and its sealed details."""

    kind: RequestType
    plain: dict[str, Any]
    sealed: dict[str, Any]


def check(session: Session, *, type: str, details: Mapping[str, Any], channel: str,
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


def _split_details(session: Session, kind: RequestType,
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
