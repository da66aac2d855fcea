"""The life of a data subject request: one pure transition table with guards.

    pending_verification -> verified -> processing -> completed
    any state before completed -> rejected | cancelled
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from dsar.deadlines import MAX_EXTENSION_MONTHS, WorkingDays, due_at


class RequestType(StrEnum):
    """The six rights a data subject request can exercise."""

    ACCESS = "access"              # Art. 15
    PORTABILITY = "portability"    # Art. 20
    ERASURE = "erasure"            # Art. 17
    RECTIFICATION = "rectification"  # Art. 16
    RESTRICTION = "restriction"    # Art. 18
    OBJECTION = "objection"        # Art. 21


class RequestStatus(StrEnum):
    """Where a request stands (the module docstring draws the transitions)."""

    PENDING_VERIFICATION = "pending_verification"
    VERIFIED = "verified"
    PROCESSING = "processing"
    COMPLETED = "completed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


class Action(StrEnum):
    """What moves a request on: the hub or a DPO acts, or the subject cancels."""

    VERIFY = "verify"
    START = "start"
    COMPLETE = "complete"
    REJECT = "reject"
    CANCEL = "cancel"


class RejectionGround(StrEnum):
    """Why a DPO refuses to act on a request (Art. 12(4)): the subject is told the ground,
    the reason, and their right to complain and to a judicial remedy. A refusal is the
    only answer to an unfounded or excessive request here: the hub charges no fee
    (Art. 12(5))."""

    MANIFESTLY_UNFOUNDED = "manifestly_unfounded"    # Art. 12(5)
    EXCESSIVE = "excessive"                          # Art. 12(5), in particular repetitive
    IDENTITY_NOT_CONFIRMED = "identity_not_confirmed"  # Art. 12(6)
    IDENTITY_NOT_FOUND = "identity_not_found"        # Art. 11(2): nobody identified
    OTHER = "other"


#: a request in one of these is over; nothing moves it on
FINAL = frozenset({RequestStatus.COMPLETED, RequestStatus.REJECTED, RequestStatus.CANCELLED})
_S = RequestStatus

TRANSITIONS: dict[tuple[RequestStatus, Action], RequestStatus] = {
    (_S.PENDING_VERIFICATION, Action.VERIFY): _S.VERIFIED,
    (_S.VERIFIED, Action.START): _S.PROCESSING,
    (_S.PROCESSING, Action.COMPLETE): _S.COMPLETED,
    **{(s, Action.REJECT): _S.REJECTED for s in _S if s not in FINAL},
    **{(s, Action.CANCEL): _S.CANCELLED for s in _S if s not in FINAL},
}


class TransitionRefused(Exception):
    """The action is not possible in the request's state (409), with the reason."""


@dataclass(frozen=True)
class Snapshot:
    """What the guards need to know about a request."""

    status: RequestStatus
    received_at: datetime
    extension_months: int


def next_status(snapshot: Snapshot, action: Action, *, reason: str | None = None) -> RequestStatus:
    """The status after ``action``, or TransitionRefused saying why not."""
    target = TRANSITIONS.get((snapshot.status, action))
    if target is None:
        raise TransitionRefused(f"a {snapshot.status} request cannot be {_PAST[action]}")
    if action is Action.REJECT and not (reason and reason.strip()):
        # Art. 12(4): the subject must be told why, and of their right to complain.
        raise TransitionRefused("a rejection needs a reason")
    return target


def extension(snapshot: Snapshot, months: int, now: datetime, *,
              working_days: WorkingDays) -> int:
    """Total extension months after extending by ``months``; refuse what Art. 12(3) forbids
    (the original deadline is the first one, moved to a working day like every other)."""
    if snapshot.status in FINAL:
        raise TransitionRefused(f"a {snapshot.status} request cannot be extended")
    if months not in (1, 2):
        raise TransitionRefused("extend by 1 or 2 months")
    total = snapshot.extension_months + months
    if total > MAX_EXTENSION_MONTHS:
        raise TransitionRefused("the deadline can be extended by at most two months in total")
    if now >= due_at(snapshot.received_at, working_days=working_days):
        raise TransitionRefused("an extension must be decided before the original one-month "
                                "deadline")
    return total


_PAST = {Action.VERIFY: "verified", Action.START: "started", Action.COMPLETE: "completed",
         Action.REJECT: "rejected", Action.CANCEL: "cancelled"}
