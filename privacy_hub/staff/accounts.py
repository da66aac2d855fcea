"""Staff accounts: created with a password and an enrolled authenticator, signed in with both.

- Passwords: argon2id (argon2-cffi's RFC 9106 defaults), rehashed on sign-in when the
  parameters change.
- Second factor: TOTP (RFC 6238, pyotp), the secret sealed under the hub's app-secrets key
  and bound to the staff id; a code is accepted once (the last step used is kept) and one
  step either side of now. Ten single-use recovery codes, kept as SHA-256 hashes.
- Lockout: after ``MAX_FAILURES`` failed sign-ins in a row the account refuses every
  attempt for ``LOCKOUT``. The answer to a wrong password, a wrong code, an unknown or a
  disabled account is the same, and costs the same argon2 work.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import audit
from audit.clock import utcnow
from audit.ids import new_id
from privacy_hub.models import StaffMember
from privacy_hub.staff.roles import ROLES
from privacy_hub.vault import crypto

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
PASSWORD_MIN, PASSWORD_MAX = 12, 1024
RECOVERY_CODES = 10
ISSUER = "Privacy Hub"

_hasher = PasswordHasher()
#: verified against when the address is unknown, so that answer costs the same work
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class StaffError(Exception):
    """A staff operation was refused; the message says what to fix."""


class InvalidStaff(StaffError):
    """Input to fix, by field."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class StaffExists(StaffError):
    """A staff member with this address exists already."""


class NoSuchStaff(StaffError):
    """No staff member with this id or address."""


class SignInRefused(StaffError):
    """Wrong address, password or code, or a disabled account: one answer for all. With
    ``locked_for`` set, the account (or the address) is locked for that long."""

    def __init__(self, locked_for: timedelta | None = None) -> None:
        super().__init__("locked" if locked_for else "refused")
        self.locked_for = locked_for


@dataclass(frozen=True)
class Enrolment:
    """What a new or reset staff member is shown once: the authenticator's URI (and its
    secret) and their recovery codes. Nothing here is stored in clear."""

    staff_id: str
    totp_uri: str
    totp_secret: str
    recovery_codes: tuple[str, ...]


def normalise_email(email: str) -> str:
    """The sign-in name: trimmed and lower-cased."""
    return email.strip().lower()


def _check_password(password: str, email: str) -> list[str]:
    if len(password) < PASSWORD_MIN:
        return [f"use at least {PASSWORD_MIN} characters"]
    if len(password) > PASSWORD_MAX:
        return [f"use at most {PASSWORD_MAX} characters"]
    if password.strip().lower() == email:
        return ["the password must not be the email address"]
    return []


def _recovery_digest(code: str) -> str:
    return hashlib.sha256(code.replace("-", "").replace(" ", "").lower().encode()).hexdigest()


def _new_recovery_codes() -> tuple[tuple[str, ...], str]:
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread
    codes = tuple("-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(2))
                  for _ in range(RECOVERY_CODES))
    return codes, json.dumps([_recovery_digest(c) for c in codes])


def _totp_aad(staff_id: str) -> bytes:
    return b"staff.totp_secret|" + staff_id.encode()


class StaffDirectory:
    """Creates staff accounts and signs staff in. Methods take a session and never commit."""

    def __init__(self, secrets_key: bytes) -> None:
        self._aead = AESGCM(secrets_key)

    # -- accounts -------------------------------------------------------------------------

    def create(self, session: Session, *, email: str, role: str, password: str,
               actor: audit.Actor) -> Enrolment:
        """Add a staff member; returns the enrolment to show them once."""
        email = normalise_email(email)
        errors: dict[str, list[str]] = {}
        if "@" not in email or len(email) > 320 or any(c.isspace() for c in email):
            errors["email"] = ["enter an email address, like name@example.com"]
        if role not in ROLES:
            errors["role"] = [f"choose one of: {', '.join(ROLES)}"]
        if problems := _check_password(password, email):
            errors["password"] = problems
        if errors:
            raise InvalidStaff(errors)
        if session.scalar(select(StaffMember.id).where(StaffMember.email == email)):
            raise StaffExists("a staff member with this email address exists already")
        staff_id = new_id()
        member = StaffMember(id=staff_id, email=email, role=role,
                             password_hash=_hasher.hash(password), totp_secret_ct=b"",
                             recovery_codes="[]", failed_sign_ins=0, created_at=utcnow())
        enrolment = self._enrol(member)
        session.add(member)
        session.flush()
        audit.record(session, actor=actor, action="staff.created",
                     details={"staff": staff_id, "role": role})
        return enrolment

    def _enrol(self, member: StaffMember) -> Enrolment:
        secret = pyotp.random_base32()
        member.totp_secret_ct = crypto.wrap(self._aead, secret.encode(), _totp_aad(member.id))
        member.totp_last_step = None
        member.totp_confirmed_at = None
        codes, digests = _new_recovery_codes()
        member.recovery_codes = digests
        uri = pyotp.TOTP(secret).provisioning_uri(name=member.email, issuer_name=ISSUER)
        return Enrolment(member.id, uri, secret, codes)

    def reset_second_factor(self, session: Session, staff_id: str, *,
                            actor: audit.Actor) -> Enrolment:
        """A new authenticator secret and new recovery codes; the old ones stop working."""
        member = self._get(session, staff_id)
        enrolment = self._enrol(member)
        member.failed_sign_ins, member.locked_until = 0, None
        audit.record(session, actor=actor, action="staff.totp_reset",
                     details={"staff": member.id})
        return enrolment

    def set_role(self, session: Session, staff_id: str, role: str, *,
                 actor: audit.Actor) -> StaffMember:
        """Change a staff member's role."""
        if role not in ROLES:
            raise InvalidStaff({"role": [f"choose one of: {', '.join(ROLES)}"]})
        member = self._get(session, staff_id)
        if member.role != role:
            previous, member.role = member.role, role
            audit.record(session, actor=actor, action="staff.role_changed",
                         details={"staff": member.id, "from": previous, "to": role})
        return member

    def disable(self, session: Session, staff_id: str, *, actor: audit.Actor) -> StaffMember:
        """The staff member can no longer sign in; their session ends at its next request."""
        member = self._get(session, staff_id)
        if member.disabled_at is None:
            member.disabled_at = utcnow()
            audit.record(session, actor=actor, action="staff.disabled",
                         details={"staff": member.id})
        return member

    def find(self, session: Session, ident: str) -> StaffMember:
        """A staff member by id or by email address; raises NoSuchStaff."""
        member = session.get(StaffMember, ident) or session.scalar(
            select(StaffMember).where(StaffMember.email == normalise_email(ident)))
        if member is None:
            raise NoSuchStaff("no staff member with this id or email address")
        return member

    def _get(self, session: Session, staff_id: str) -> StaffMember:
        member = session.get(StaffMember, staff_id)
        if member is None:
            raise NoSuchStaff("no staff member with this id")
        return member

    def active(self, session: Session, staff_id: str) -> StaffMember | None:
        """The staff member if they may be signed in now, else None."""
        member = session.get(StaffMember, staff_id)
        return member if member is not None and member.disabled_at is None else None

    def all(self, session: Session) -> list[StaffMember]:
        """Every staff member, active first, by address."""
        return list(session.scalars(select(StaffMember).order_by(
            StaffMember.disabled_at.is_not(None), StaffMember.email)))

    def count_active(self, session: Session, role: str | None = None) -> int:
        """How many staff members can sign in (with ``role``, if given)."""
        query = select(func.count()).select_from(StaffMember).where(
            StaffMember.disabled_at.is_(None))
        if role:
            query = query.where(StaffMember.role == role)
        return int(session.scalar(query) or 0)

    # -- signing in -----------------------------------------------------------------------

    def authenticate(self, session: Session, *, email: str, password: str, code: str,
                     now: datetime | None = None) -> StaffMember:
        """The staff member these credentials sign in, or SignInRefused. Failures are
        counted (and audited) in ``session``: callers commit it whatever the outcome."""
        now = now or utcnow()
        member = session.scalar(select(StaffMember).where(
            StaffMember.email == normalise_email(email)).with_for_update())
        if member is None or member.disabled_at is not None:
            _verify(_DUMMY_HASH, password)
            raise SignInRefused()
        if member.locked_until is not None and member.locked_until > now:
            _verify(_DUMMY_HASH, password)
            raise SignInRefused(member.locked_until - now)
        password_ok = _verify(member.password_hash, password)
        second_ok = password_ok and self._second_factor(member, code, now)
        if not second_ok:
            member.failed_sign_ins += 1
            locked = member.failed_sign_ins >= MAX_FAILURES
            if locked:
                member.locked_until, member.failed_sign_ins = now + LOCKOUT, 0
            audit.record(session, actor=audit.Actor("system", "console"),
                         action="staff.sign_in_failed",
                         details={"staff": member.id, "locked": locked})
            raise SignInRefused(LOCKOUT if locked else None)
        if _hasher.check_needs_rehash(member.password_hash):
            member.password_hash = _hasher.hash(password)
        member.failed_sign_ins, member.locked_until = 0, None
        member.last_sign_in_at = now
        if member.totp_confirmed_at is None:
            member.totp_confirmed_at = now
        audit.record(session, actor=audit.Actor("staff", member.id), action="staff.signed_in",
                     details={})
        return member

    def _second_factor(self, member: StaffMember, code: str, now: datetime) -> bool:
        code = code.strip().replace(" ", "")
        if code.isdigit() and len(code) == 6:
            return self._totp(member, code, now)
        return self._recovery_code(member, code)

    def _totp(self, member: StaffMember, code: str, now: datetime) -> bool:
        secret = crypto.unwrap(self._aead, member.totp_secret_ct, _totp_aad(member.id)).decode()
        totp = pyotp.TOTP(secret)
        step_now = int(now.timestamp()) // totp.interval
        matched = None
        for step in (step_now - 1, step_now, step_now + 1):
            if hmac.compare_digest(totp.generate_otp(step), code):
                matched = step
        if matched is None or (member.totp_last_step is not None
                               and matched <= member.totp_last_step):
            return False  # wrong, or replayed: a code works once
        member.totp_last_step = matched
        return True

    def _recovery_code(self, member: StaffMember, code: str) -> bool:
        digest = _recovery_digest(code)
        remaining = json.loads(member.recovery_codes)
        found = [d for d in remaining if hmac.compare_digest(d, digest)]
        if not found or not code:
            return False
        remaining.remove(found[0])
        member.recovery_codes = json.dumps(remaining)
        return True

    def current_code(self, member: StaffMember, at: float | None = None) -> str:
        """The authenticator's code now (for the demo instance and tests, never shown
        to anyone signing in)."""
        secret = crypto.unwrap(self._aead, member.totp_secret_ct, _totp_aad(member.id)).decode()
        return str(pyotp.TOTP(secret).at(at if at is not None else time.time()))


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password[:PASSWORD_MAX])
    except (VerificationError, InvalidHashError):
        return False


def recovery_codes_left(member: StaffMember) -> int:
    """How many unused recovery codes the staff member has."""
    return len(json.loads(member.recovery_codes))
