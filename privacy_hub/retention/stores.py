"""The sweeps of the retention pass: for each store, what has run out at ``now``, deleted
in batches of at most ``batch`` rows, each batch its own short transaction (the write
lock is never held long), or only counted (``dry_run``). Each returns how many went.

The periods come from privacy_hub/retention/policies.py through the settings and the
purpose registry; privacy_hub/usecases/retention.py runs the sweeps and audits the pass.
A ``tick``, when given, is told how many rows went in each batch as it commits (the CLI
draws its progress from it); a sweep that holds several stores names the store too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Table, and_, delete, func, or_, select, tuple_
from sqlalchemy.orm import Session

import audit
from audit.models import AuditCheckpoint, AuditEntry
from consent import proof
from consent.models import BannerChoice, ConfirmationToken, ConsentCheck
from dsar.models import DataSubjectRequest, RequestHistory, RequestSystem, VerificationToken
from dsar.workflow import FINAL
from privacy_hub.db import transaction
from privacy_hub.jobs import outbox
from privacy_hub.jobs.mail import OUTBOX_FOLDER
from privacy_hub.jobs.outbox import OutboxJob
from privacy_hub.models import Disclosure, ExportFile, IdempotencyRecord, SignInLink
from privacy_hub.rights.exports import Exports
from privacy_hub.vault.models import CustomerEvent, RetainedRecord

if TYPE_CHECKING:
    from privacy_hub.hub import Hub

log = logging.getLogger(__name__)

ACTOR = audit.Actor("job", "retention")

#: told how many rows went in a batch just committed
Tick = Callable[[int], None]
#: the same for a sweep over several stores: the store, and how many rows went
NamedTick = Callable[[str, int], None]


def named(tick: NamedTick | None, store: str) -> Tick | None:
    """``tick`` for one store's batches."""
    return None if tick is None else (lambda rows: tick(store, rows))


def _days(n: int) -> timedelta:
    return timedelta(days=n)


def in_batches(hub: Hub, step: Callable[[Session], int], batch: int,
               tick: Tick | None = None) -> int:
    """Run ``step`` (deletes at most ``batch`` rows, returns how many) in a transaction of
    its own until it deletes fewer: short write locks, however much has run out."""
    total = 0
    while True:
        with transaction(hub.sessions) as session:
            done = step(session)
        total += done
        if tick is not None and done:
            tick(done)
        if done < batch:
            return total


def sweep(hub: Hub, table: Any, where: ColumnElement[bool], *, dry_run: bool,
          batch: int, tick: Tick | None = None) -> int:
    """Delete the rows of ``table`` (a mapped class) matching ``where``, a batch per
    transaction; or count them."""
    t: Table = table.__table__
    keys = list(t.primary_key.columns)
    if dry_run:
        with hub.read_sessions() as session:
            return int(session.scalar(select(func.count()).select_from(t).where(where)) or 0)

    def step(session: Session) -> int:
        found = session.execute(select(*keys).where(where).limit(batch)).all()
        if found:
            match = (keys[0].in_([row[0] for row in found]) if len(keys) == 1
                     else tuple_(*keys).in_([tuple(row) for row in found]))
            session.execute(delete(t).where(match))
        return len(found)

    return in_batches(hub, step, batch, tick)


def customer_events(hub: Hub, now: datetime, purposes: dict[str, int], *, dry_run: bool,
                    batch: int, tick: Tick | None = None) -> int:
    """Events whose purpose's retention ran out after they occurred (an event of a purpose
    not in the registry is kept: no period is known for it)."""
    return sum(sweep(hub, CustomerEvent, and_(CustomerEvent.purpose == key,
                                              CustomerEvent.occurred_at <= now - _days(days)),
                     dry_run=dry_run, batch=batch, tick=tick)
               for key, days in sorted(purposes.items()))


def legal_retention(hub: Hub, now: datetime, *, dry_run: bool, tick: Tick | None = None) -> int:
    """Data kept under a legal duty whose hold ended (the retention_purge job does it at
    the end of each hold; this catches a job that never ran)."""
    if dry_run:
        with hub.read_sessions() as session:
            return int(session.scalar(select(func.count()).select_from(RetainedRecord)
                                      .where(RetainedRecord.hold_until <= now)) or 0)
    with transaction(hub.sessions) as session:
        done = hub.vault.purge_retained(session, now, actor=ACTOR)
    if tick is not None and done:
        tick(done)
    return done


def consent_evidence(hub: Hub, now: datetime, *, dry_run: bool, batch: int,
                     tick: Tick | None = None) -> int:
    """R-CREC-06: the evidence of consents that ended longer ago than its period."""
    from privacy_hub.jobs.retention import purge_consent_proof

    if not dry_run:
        return purge_consent_proof(hub, now, batch=batch, tick=tick)
    with hub.read_sessions() as session:
        return proof.count_due(session, now - _days(hub.settings.consent_proof_retention_days))


def dsar_records(hub: Hub, now: datetime, *, dry_run: bool, batch: int,
                 tick: Tick | None = None) -> int:
    """Requests closed longer ago than the period, with their history, the systems'
    reports, their verification links and what is left of their export."""
    r = DataSubjectRequest
    closed = and_(r.status.in_([str(s) for s in FINAL]),
                  func.coalesce(r.completed_at, r.rejected_at, r.updated_at)
                  <= now - _days(hub.settings.retention_requests_days))
    if dry_run:
        with hub.read_sessions() as session:
            return int(session.scalar(select(func.count()).select_from(r).where(closed)) or 0)

    def step(session: Session) -> int:
        ids = list(session.scalars(select(r.id).where(closed).order_by(r.id).limit(batch)))
        if ids:
            _delete_requests(hub, session, ids)
        return len(ids)

    return in_batches(hub, step, batch, tick)


def _delete_requests(hub: Hub, session: Session, ids: Sequence[str]) -> None:
    folder = hub.settings.instance_path / "exports"
    for export in session.scalars(select(ExportFile).where(ExportFile.request_id.in_(ids),
                                                           ExportFile.deleted_at.is_(None))):
        (folder / export.file).unlink(missing_ok=True)
    for table, column in ((RequestHistory, RequestHistory.request_id),
                          (RequestSystem, RequestSystem.request_id),
                          (VerificationToken, VerificationToken.request_id),
                          (ExportFile, ExportFile.request_id),
                          (DataSubjectRequest, DataSubjectRequest.id)):
        session.execute(delete(table).where(column.in_(ids)))


def exports(hub: Hub, now: datetime, *, dry_run: bool, batch: int,
            tick: Tick | None = None) -> int:
    """Export files past their period (the export_delete job does it on time; this
    catches one that never ran): file and key go, the row stays with its request."""
    files = Exports(hub)
    if dry_run:
        with hub.read_sessions() as session:
            return len(session.scalars(select(ExportFile.request_id).where(
                ExportFile.deleted_at.is_(None),
                or_(ExportFile.delete_at <= now, ExportFile.created_at
                    <= now - _days(hub.settings.retention_exports_days)))).all())
    return in_batches(hub, lambda session: files.delete_due(session, now, limit=batch), batch,
                      tick)


def verification_tokens(hub: Hub, now: datetime, *, dry_run: bool, batch: int,
                        tick: Tick | None = None) -> int:
    """Single-use links a grace period after they expired or were used."""
    cutoff = now - _days(hub.settings.retention_tokens_days)
    return sum(sweep(hub, t, or_(t.expires_at <= cutoff, t.used_at <= cutoff),
                     dry_run=dry_run, batch=batch, tick=tick)
               for t in (VerificationToken, ConfirmationToken, SignInLink))


def _finished_before(cutoff: datetime) -> ColumnElement[bool]:
    j = OutboxJob
    return or_(and_(j.status == "delivered", j.delivered_at <= cutoff),
               and_(j.status.in_(("cancelled", "dead")), j.created_at <= cutoff))


def outbox_jobs(hub: Hub, now: datetime, *, dry_run: bool, batch: int,
                tick: NamedTick | None = None) -> dict[str, int]:
    """Finished background jobs past the period: webhook deliveries, mails (and the
    embedded default's mail files), and every other kind."""
    cutoff = now - _days(hub.settings.retention_outbox_days)
    done = _finished_before(cutoff)
    j = OutboxJob
    return {
        "webhook_deliveries": sweep(hub, j, and_(j.kind == outbox.WEBHOOK, done),
                                    dry_run=dry_run, batch=batch,
                                    tick=named(tick, "webhook_deliveries")),
        "mail_outbox": sweep(hub, j, and_(j.kind == outbox.MAIL, done), dry_run=dry_run,
                             batch=batch, tick=named(tick, "mail_outbox"))
                       + mail_files(hub.settings.instance_path / OUTBOX_FOLDER, cutoff,
                                    dry_run=dry_run, tick=named(tick, "mail_outbox")),
        "background_jobs": sweep(hub, j, and_(j.kind.not_in((outbox.WEBHOOK, outbox.MAIL)),
                                              done), dry_run=dry_run, batch=batch,
                                 tick=named(tick, "background_jobs")),
    }


def mail_files(folder: Path, cutoff: datetime, *, dry_run: bool,
               tick: Tick | None = None) -> int:
    """The embedded default's mail files written at or before ``cutoff`` (their names
    start with the UTC time they were written: privacy_hub/jobs/mail.py)."""
    if not folder.is_dir():
        return 0
    stamp = f"{cutoff:%Y%m%dT%H%M%S}"
    old = [p for p in folder.glob("*.eml") if p.name[:15] <= stamp]
    if not dry_run:
        for path in old:
            path.unlink(missing_ok=True)
        if tick is not None and old:
            tick(len(old))
    return len(old)


def dated(hub: Hub, now: datetime, *, dry_run: bool, batch: int,
          tick: NamedTick | None = None) -> dict[str, int]:
    """The stores deleted a fixed period after one date of theirs."""
    s = hub.settings
    due: dict[str, tuple[Any, ColumnElement[bool]]] = {
        "check_log": (ConsentCheck,
                      ConsentCheck.checked_at <= now - _days(s.retention_check_log_days)),
        "idempotency_records": (
            IdempotencyRecord,
            IdempotencyRecord.created_at <= now - _days(s.retention_idempotency_days)),
        "banner_choices": (
            BannerChoice,
            BannerChoice.expires_at <= now - _days(s.retention_banner_choices_days)),
        "disclosures": (
            Disclosure,
            Disclosure.disclosed_at <= now - _days(s.retention_disclosures_days)),
    }
    return {name: sweep(hub, table, where, dry_run=dry_run, batch=batch,
                        tick=named(tick, name))
            for name, (table, where) in due.items()}


def audit_log(hub: Hub, now: datetime, *, dry_run: bool, batch: int,
              tick: Tick | None = None) -> int:
    """Audit entries older than the period, only below a signed checkpoint (so that the
    rest of the chain still verifies): audit.prune does that."""
    cutoff = now - _days(hub.settings.retention_audit_days)
    if dry_run:
        with hub.read_sessions() as session:
            signed = session.scalar(select(func.max(AuditCheckpoint.seq)))
            if signed is None:
                return 0
            return int(session.scalar(select(func.count()).select_from(AuditEntry).where(
                AuditEntry.recorded_at < cutoff, AuditEntry.seq <= signed)) or 0)
    return in_batches(hub, lambda session: audit.prune(session, before=cutoff, limit=batch),
                      batch, tick)
