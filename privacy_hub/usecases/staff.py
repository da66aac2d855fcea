"""Console staff: create, list, change and disable accounts; sign a staff member in.

The CLI (``privacy-hub staff ...``) and the console's staff pages call these; the rules
(password length, roles, lockout, one answer for every failed sign-in) live in
``privacy_hub.staff``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

import audit
from privacy_hub.hub import Hub
from privacy_hub.models import StaffMember
from privacy_hub.staff.accounts import (
    Enrolment,
    InvalidStaff,
    NoSuchStaff,
    SignInRefused,
    StaffExists,
    recovery_codes_left,
)
from privacy_hub.staff.roles import ROLES, permissions_of
from privacy_hub.usecases.errors import Conflict, Invalid, NotFound

__all__ = [
    "ROLES",
    "Enrolment",
    "SignInRefused",
    "all_staff",
    "create",
    "describe",
    "disable",
    "reset_second_factor",
    "set_role",
    "sign_in",
    "signed_in",
]


def describe(member: StaffMember) -> dict[str, Any]:
    """A staff member as the console and the CLI show them (no secret, no hash)."""
    return {"id": member.id, "email": member.email, "role": member.role,
            "active": member.disabled_at is None, "created_at": member.created_at,
            "last_sign_in_at": member.last_sign_in_at,
            "enrolled": member.totp_confirmed_at is not None,
            "recovery_codes_left": recovery_codes_left(member),
            "locked_until": member.locked_until}


def create(hub: Hub, session: Session, *, email: str, role: str, password: str,
           actor: audit.Actor) -> tuple[dict[str, Any], Enrolment]:
    """A new staff member, and the enrolment to show them once."""
    try:
        enrolment = hub.staff.create(session, email=email, role=role, password=password,
                                     actor=actor)
    except InvalidStaff as exc:
        raise Invalid("The staff member cannot be created as given.", errors=exc.errors) from None
    except StaffExists as exc:
        raise Conflict(str(exc)) from None
    return describe(hub.staff.find(session, enrolment.staff_id)), enrolment


def all_staff(hub: Hub, session: Session) -> list[dict[str, Any]]:
    """Every staff member, active first."""
    return [describe(m) for m in hub.staff.all(session)]


def get(hub: Hub, session: Session, ident: str) -> dict[str, Any]:
    """One staff member by id or email address."""
    return describe(_find(hub, session, ident))


def _find(hub: Hub, session: Session, ident: str) -> StaffMember:
    try:
        return hub.staff.find(session, ident)
    except NoSuchStaff as exc:
        raise NotFound(str(exc)) from None


def _keep_an_admin(hub: Hub, session: Session, member: StaffMember, actor: audit.Actor) -> None:
    if actor.kind == "staff" and actor.id == member.id:
        raise Conflict("You cannot disable or demote yourself; ask another admin.")
    if (member.role == "admin" and member.disabled_at is None
            and hub.staff.count_active(session, "admin") <= 1):
        raise Conflict("This is the last active admin: make another admin first.")


def disable(hub: Hub, session: Session, ident: str, *, actor: audit.Actor) -> dict[str, Any]:
    """The staff member can no longer sign in (their console session ends at once)."""
    member = _find(hub, session, ident)
    if member.disabled_at is None:
        _keep_an_admin(hub, session, member, actor)
    return describe(hub.staff.disable(session, member.id, actor=actor))


def set_role(hub: Hub, session: Session, ident: str, role: str, *,
             actor: audit.Actor) -> dict[str, Any]:
    """Give a staff member another role."""
    member = _find(hub, session, ident)
    if role != member.role and member.role == "admin":
        _keep_an_admin(hub, session, member, actor)
    try:
        return describe(hub.staff.set_role(session, member.id, role, actor=actor))
    except InvalidStaff as exc:
        raise Invalid("The role is not one of the console's roles.", errors=exc.errors) from None


def reset_second_factor(hub: Hub, session: Session, ident: str, *,
                        actor: audit.Actor) -> Enrolment:
    """A new authenticator secret and recovery codes (a lost phone); shown once."""
    member = _find(hub, session, ident)
    return hub.staff.reset_second_factor(session, member.id, actor=actor)


def sign_in(hub: Hub, session: Session, *, email: str, password: str,
            code: str) -> dict[str, Any]:
    """The signed-in staff member (id and role), or SignInRefused. Callers commit either
    way: a failed attempt is counted and audited."""
    member = hub.staff.authenticate(session, email=email, password=password, code=code)
    return {"id": member.id, "role": member.role}


def signed_in(hub: Hub, session: Session, staff_id: str) -> dict[str, Any] | None:
    """The staff member a console session belongs to, while they may sign in."""
    member = hub.staff.active(session, staff_id)
    if member is None:
        return None
    return {"id": member.id, "role": member.role, "email": member.email,
            "permissions": permissions_of(member.role)}
