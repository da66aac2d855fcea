"""Storage limitation for inactive customers (R-RET-02, Art. 5(1)(e)).

A customer with no purchase, portal sign-in, consent decision or request for
PRIVACY_HUB_INACTIVITY_DAYS (three years by default, the CNIL's practice for prospects)
is erased, as an erasure request erases (so downstream systems are told and what a legal
duty keeps is kept). PRIVACY_HUB_INACTIVITY_NOTICE_DAYS (30) before, they get a mail with
a signed one-time link to keep their account; following it, signing in, or any other
activity (privacy_hub/vault/activity.py) withdraws the warning. A customer without an
email address, whom nobody can warn, is erased when the full period has passed.

``run_inactivity`` is one pass, run by the workers' housekeeping and by `privacy-hub
retention inactive`. It works in short transactions (a batch of warnings, one erasure
each), so it never holds the write lock long, and it audits counts only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import Session

import audit
from audit.clock import utcnow
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from privacy_hub.jobs import outbox
from privacy_hub.usecases import customers
from privacy_hub.vault import activity
from privacy_hub.vault.errors import CustomerNotFound
from privacy_hub.vault.models import Customer

log = logging.getLogger(__name__)

ACTOR = audit.Actor("job", "inactivity")
#: how an erasure for inactivity is recorded on its erasure request
VERIFIED_BY = "inactivity"
#: warnings per transaction
BATCH = 200


class LinkRefused(Exception):
    """The keep-my-account link is not this hub's, was used, or its warning is over."""


@dataclass(frozen=True)
class Counts:
    """What a pass did (or, in a dry run, would do)."""

    warned: int = 0
    erased: int = 0
    #: erasures that raised (logged by type; tried again on the next pass)
    failed: int = 0
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Limits:
    """The pass's moments: who is due for a warning, and whose warning ran out."""

    warn_before: datetime
    inactive_before: datetime
    notice_before: datetime

    @classmethod
    def at(cls, hub: Hub, now: datetime) -> _Limits:
        days, notice = hub.settings.inactivity_days, hub.settings.inactivity_notice_days
        return cls(warn_before=now - timedelta(days=days - notice),
                   inactive_before=now - timedelta(days=days),
                   notice_before=now - timedelta(days=notice))


def _inactive_since(moment: datetime) -> ColumnElement[bool]:
    """Not active since ``moment`` (a customer made before migration 0023 and never
    touched since counts from their creation)."""
    return or_(Customer.last_active_at < moment,
               and_(Customer.last_active_at.is_(None), Customer.created_at < moment))


def _to_warn(limits: _Limits) -> ColumnElement[bool]:
    return and_(Customer.status != "erased", Customer.inactivity_notice_at.is_(None),
                Customer.email_bidx.is_not(None), _inactive_since(limits.warn_before))


def _to_erase(limits: _Limits) -> ColumnElement[bool]:
    warned_long_enough = and_(Customer.inactivity_notice_at.is_not(None),
                              Customer.inactivity_notice_at <= limits.notice_before,
                              _inactive_since(limits.warn_before))
    nobody_to_tell = and_(Customer.email_bidx.is_(None),
                          _inactive_since(limits.inactive_before))
    return and_(Customer.status != "erased", or_(warned_long_enough, nobody_to_tell))


def run_inactivity(hub: Hub, now: datetime, *, dry_run: bool = False,
                   batch: int = BATCH) -> Counts:
    """One pass at ``now``: erase those whose warning ran out (or who cannot be warned),
    warn those inactive for the period less the notice. With ``dry_run``, only count."""
    limits = _Limits.at(hub, now)
    if dry_run:
        with hub.read_sessions() as session:
            return Counts(warned=_count(session, _to_warn(limits)),
                          erased=_count(session, _to_erase(limits)), dry_run=True)
    erased = failed = 0
    for customer_id in _ids(hub, _to_erase(limits), batch):
        try:
            with transaction(hub.sessions) as session:
                erased += _erase_if_still_due(hub, session, customer_id, limits)
        except Exception as exc:
            # Only the type: a message may quote data. The next pass tries again.
            log.error("inactivity: %s while erasing a customer", type(exc).__name__)
            failed += 1
    warned = 0
    while True:
        with transaction(hub.sessions) as session:
            done = _warn_batch(hub, session, limits, now, batch)
        warned += done
        if done < batch:
            break
    counts = Counts(warned=warned, erased=erased, failed=failed)
    if warned or erased or failed:
        with transaction(hub.sessions) as session:
            audit.record(session, actor=ACTOR, action="retention.inactivity_pass", details={
                **counts.as_dict(), "inactivity_days": hub.settings.inactivity_days,
                "notice_days": hub.settings.inactivity_notice_days})
    return counts


def _count(session: Session, condition: ColumnElement[bool]) -> int:
    return int(session.scalar(select(func.count()).select_from(Customer).where(condition))
               or 0)


def _ids(hub: Hub, condition: ColumnElement[bool], batch: int) -> Iterator[str]:
    """The ids matching ``condition``, in id order, a batch per short read."""
    after = ""
    while True:
        with hub.read_sessions() as session:
            ids = list(session.scalars(select(Customer.id).where(condition, Customer.id > after)
                                       .order_by(Customer.id).limit(batch)))
        yield from ids
        if len(ids) < batch:
            return
        after = ids[-1]


def _erase_if_still_due(hub: Hub, session: Session, customer_id: str, limits: _Limits) -> int:
    """Erase the customer through the API's erasure, if still due with their row locked
    (they may have signed in since the ids were read). 1 if erased, else 0."""
    try:
        row = hub.vault.get_row(session, customer_id, for_update=True)
    except CustomerNotFound:
        return 0
    due = session.scalar(select(Customer.id).where(Customer.id == row.id,
                                                   _to_erase(limits)))
    if due is None:
        return 0
    customers.erase(hub, session, customer_id, actor=ACTOR, verification_method=VERIFIED_BY)
    return 1


def _warn_batch(hub: Hub, session: Session, limits: _Limits, now: datetime,
                batch: int) -> int:
    """Warn up to ``batch`` customers: the notice time recorded, a mail queued with their
    keep-my-account link. Returns how many."""
    ids = list(session.scalars(select(Customer.id).where(_to_warn(limits))
                               .order_by(Customer.id).limit(batch)
                               .with_for_update(skip_locked=True)))
    if not ids:
        return 0
    notice_at = now.astimezone(UTC).replace(microsecond=0)  # the link names it in seconds
    session.execute(update(Customer).where(Customer.id.in_(ids))
                    .values(inactivity_notice_at=notice_at)
                    .execution_options(synchronize_session=False))
    key = _link_key(hub, session)
    erase_on = (notice_at + timedelta(days=hub.settings.inactivity_notice_days)).date()
    for customer_id in ids:
        outbox.enqueue_mail(session, template="inactivity_notice", customer_id=customer_id,
                            data={"erase_on": erase_on.isoformat()},
                            secrets={"token": make_token(key, customer_id, notice_at)})
    audit.record_many(session, actor=ACTOR, action="customer.inactivity_notice_sent",
                      entries=[(customer_id, None) for customer_id in ids])
    return len(ids)


# -- the keep-my-account link ------------------------------------------------------------
# Signed like the unsubscribe links (privacy_hub/unsubscribe.py), over the customer's id
# and the time of the warning: used once, the warning is withdrawn, and the link names a
# warning that no longer exists.

def _link_key(hub: Hub, session: Session) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"privacy-hub/keep-account-links/v1").derive(
        hub.keyring.hub_key(session, "app_secrets"))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(key: bytes, customer_id: str, notice_at: datetime) -> str:
    """The link's token for the warning given at ``notice_at`` (whole seconds)."""
    payload = f"{customer_id}|{int(notice_at.timestamp())}".encode()
    mac = hmac.new(key, payload, hashlib.sha256).digest()[:18]
    return f"{_b64(payload)}.{_b64(mac)}"


def _read_token(key: bytes, token: str) -> tuple[str, int]:
    try:
        payload_b64, mac_b64 = token.split(".")
        payload, mac = _unb64(payload_b64), _unb64(mac_b64)
        customer_id, stamp = payload.decode().split("|")
        notice = int(stamp)
    except (ValueError, UnicodeDecodeError):
        raise LinkRefused("malformed") from None
    if not hmac.compare_digest(mac, hmac.new(key, payload, hashlib.sha256).digest()[:18]):
        raise LinkRefused("does not verify")
    return customer_id, notice


def _warned_row(hub: Hub, session: Session, token: str, *, lock: bool) -> Customer:
    """The customer whose current warning the link names; LinkRefused otherwise."""
    if not 0 < len(token) <= 300:
        raise LinkRefused("malformed")
    customer_id, notice = _read_token(_link_key(hub, session), token)
    try:
        row = hub.vault.get_row(session, customer_id, for_update=lock)
    except CustomerNotFound:
        raise LinkRefused("no such customer") from None
    if (row.status == "erased" or row.inactivity_notice_at is None
            or int(row.inactivity_notice_at.timestamp()) != notice):
        raise LinkRefused("used, or its warning is over")
    return row


def keep_link_valid(hub: Hub, session: Session, token: str) -> bool:
    """Whether the link would keep an account now (for the page that shows its button)."""
    try:
        _warned_row(hub, session, token, lock=False)
    except LinkRefused:
        return False
    return True


def keep_account(hub: Hub, session: Session, token: str) -> str:
    """The customer followed the mail's link: their account is kept (the warning
    withdrawn, their last activity now). Returns their id; LinkRefused for a link that
    is not valid (any more). Callers commit."""
    row = _warned_row(hub, session, token, lock=True)
    activity.touch(session, row.id, utcnow())
    audit.record(session, actor=audit.Actor("customer", row.id),
                 action="customer.inactivity_erasure_cancelled", customer_id=row.id,
                 details={"via": "keep_link"})
    return row.id
