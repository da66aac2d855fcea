"""The records of processing, versioned (R-ROPA-01, Art. 30(1), 5(2)): a new version is
stored whenever the generated record (without its generation time) differs from the last
one, with its SHA-256, when and why; versions are listed, read and compared.

A version is recorded in the very transaction that changed a purpose or a system, by a
participant of the session's unit of work that settles after the audit log (so, on
PostgreSQL, under the audit head's lock: concurrent changes number their versions one after
the other), and at each start of the hub for what the configuration says (the security
measures, the controller, the deadlines).
"""

from __future__ import annotations

import hashlib
import json
import weakref
from typing import Any

from sqlalchemy import event, func, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from audit import unit_of_work
from audit.clock import utcnow
from consent.models import PurposeRow
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from privacy_hub.models import RopaVersion, System
from privacy_hub.usecases.accountability import records_of_processing
from privacy_hub.usecases.errors import NotFound

#: unit-of-work note: the purposes and systems this transaction changed
_CHANGED = "ropa.changed"
#: what a version's record leaves out: it differs at every generation
_VOLATILE = ("generated_at", "version")
MAX_CAUSE = 500


def content(record: dict[str, Any]) -> dict[str, Any]:
    """The record as a version keeps it: without its generation time."""
    return {k: v for k, v in record.items() if k not in _VOLATILE}


def canonical(record: dict[str, Any]) -> str:
    """The JSON a version stores and hashes: sorted keys, no spaces."""
    return json.dumps(content(record), sort_keys=True, separators=(",", ":"), default=str)


def _latest(session: Session) -> RopaVersion | None:
    return session.scalars(select(RopaVersion).order_by(RopaVersion.number.desc())
                           .limit(1)).first()


def record_version(hub: Hub, session: Session, *, cause: str) -> RopaVersion:
    """The current version of the record: a new one stored when the generated record
    differs from the latest version's. Callers commit."""
    text = canonical(records_of_processing(hub, session))
    digest = hashlib.sha256(text.encode()).hexdigest()
    latest = _latest(session)
    if latest is not None and latest.sha256 == digest:
        return latest
    version = RopaVersion(number=(latest.number if latest else 0) + 1, sha256=digest,
                          record=text, cause=cause[:MAX_CAUSE], created_at=utcnow())
    session.add(version)
    session.flush()
    return version


class _Recorder:
    """Records a version at the commit of a transaction that changed a purpose or system."""

    def __init__(self, hub: Hub) -> None:
        # Weak: the participants are kept by the session class, which the hub's session
        # factory holds; a strong reference would keep every hub ever opened alive.
        self.hub = weakref.ref(hub)

    def settle(self, session: Session) -> None:
        changed: set[str] | None = unit_of_work.notes(session).pop(_CHANGED, None)
        hub = self.hub()
        if changed and hub is not None:
            record_version(hub, session, cause="changed: " + ", ".join(sorted(changed)))

    def committed(self, session: Session) -> None:
        """Nothing to do after the commit."""


def _note_changes(session: Session, _context: object) -> None:
    """after_flush: note the purposes and systems this flush wrote."""
    touched = {f"purpose {o.key}" if isinstance(o, PurposeRow) else f"system {o.name}"
               for o in (*session.new, *session.dirty, *session.deleted)
               if isinstance(o, PurposeRow | System)}
    if touched:
        unit_of_work.notes(session).setdefault(_CHANGED, set()).update(touched)


def install(hub: Hub) -> None:
    """Version the record at every commit that changes a purpose or a system, and store
    the version the configuration makes now (an instance whose database has no
    ``ropa_versions`` table yet, before `privacy-hub db upgrade`, keeps no versions)."""
    if not inspect(hub.engine).has_table(RopaVersion.__tablename__):
        return
    # after the audit log: on PostgreSQL its head lock orders concurrent versions
    unit_of_work.install(hub.sessions, "ropa_versions", _Recorder(hub))
    event.listen(hub.sessions, "after_flush", _note_changes)
    try:
        with transaction(hub.sessions) as session:
            record_version(hub, session, cause="configuration at start")
    except IntegrityError:
        pass  # another process starting at the same moment stored this version first


def _summary(v: RopaVersion) -> dict[str, Any]:
    return {"number": v.number, "sha256": v.sha256, "created_at": v.created_at,
            "cause": v.cause}


def named_record(hub: Hub, session: Session) -> dict[str, Any]:
    """The record as generated now, naming the stored version it is (``version``: null
    when the latest stored version differs, until the next change or start stores it)."""
    record = records_of_processing(hub, session)
    digest = hashlib.sha256(canonical(record).encode()).hexdigest()
    latest = _latest(session)
    record["version"] = (_summary(latest) if latest is not None and latest.sha256 == digest
                         else None)
    return record


def versions(session: Session, *, before: int | None, limit: int
             ) -> tuple[list[dict[str, Any]], int | None]:
    """Versions newest first, below ``before``: the page and the number to go on below."""
    query = select(RopaVersion).order_by(RopaVersion.number.desc()).limit(limit + 1)
    if before is not None:
        query = query.where(RopaVersion.number < before)
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return [_summary(v) for v in rows], rows[-1].number if more and rows else None


#: version numbers are an INTEGER column: a larger number was never given
_MAX_NUMBER = 2**31 - 1


def _number(number: int | str) -> int | None:
    if isinstance(number, str):
        if not (number.isascii() and number.isdigit()) or len(number) > 10:
            return None
        number = int(number)
    return number if 1 <= number <= _MAX_NUMBER else None


def _get(session: Session, number: int | str) -> RopaVersion:
    parsed = _number(number)
    found = None if parsed is None else session.get(RopaVersion, parsed)
    if found is None:
        raise NotFound("No version of the records of processing with this number.")
    return found


def version(session: Session, number: int | str) -> dict[str, Any]:
    """One version with the record as it was."""
    found = _get(session, number)
    return {**_summary(found), "record": json.loads(found.record)}


def changes(session: Session, number: int | str) -> dict[str, Any]:
    """What version ``number`` changed against the one before: activities added and
    removed, each field changed in the others (before and after), the other sections
    changed. Version 1 adds every activity."""
    found = _get(session, number)
    now = json.loads(found.record)
    previous_row = session.scalars(select(RopaVersion).where(RopaVersion.number < found.number)
                                   .order_by(RopaVersion.number.desc()).limit(1)).first()
    before: dict[str, Any] = json.loads(previous_row.record) if previous_row else {}
    old = {a["purpose"]: a for a in before.get("activities", [])}
    new = {a["purpose"]: a for a in now.get("activities", [])}
    changed = []
    for key in sorted(old.keys() & new.keys()):
        fields = {name: {"before": old[key].get(name), "after": new[key].get(name)}
                  for name in sorted(old[key].keys() | new[key].keys())
                  if old[key].get(name) != new[key].get(name)}
        if fields:
            changed.append({"purpose": key, "fields": fields})
    sections = sorted(name for name in before.keys() | now.keys()
                      if name != "activities" and before.get(name) != now.get(name))
    return {"number": found.number,
            "previous": previous_row.number if previous_row else None,
            "activities_added": sorted(new.keys() - old.keys()),
            "activities_removed": sorted(old.keys() - new.keys()),
            "activities_changed": changed, "sections_changed": sections}


def count(session: Session) -> int:
    """How many versions are stored."""
    return session.scalar(select(func.count()).select_from(RopaVersion)) or 0
