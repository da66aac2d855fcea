"""Chaining the queued entries when their session commits: ``install()`` and its settings.

``record()`` only validates and queues (audit/record.py). ``install()`` makes the audit
log a participant of the session factory's unit of work (audit/unit_of_work.py): at the
outer commit it chains the queued entries inside the caller's transaction (audit/head.py),
so an entry exists exactly when the change it describes was committed, and no entry is
ever stored unchained (DESIGN.md, "Transactions" and "Audit").

Sessions that only read (installed with an ``Appender``) describe no change: their entries
are chained after their transaction, in a short one of the appender's, shared by every
read that commits meanwhile, and their commit returns once that one has committed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from audit import head, unit_of_work
from audit.chain import Unchained
from audit.errors import AuditNotInstalled
from audit.head import Checkpoints, CheckpointSigner
from audit.models import AuditHead

if TYPE_CHECKING:
    from audit.appender import Appender

#: the entries queued on a session, chained at its commit
PENDING: unit_of_work.SessionQueue[Unchained] = unit_of_work.SessionQueue("audit.pending")
#: a read-only session's entries, for its appender once the transaction has ended
APPEND_KEY = "audit.to_append"
_NAME = "audit"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Audited:
    """The audit log's part in a session factory's commits."""

    checkpoints: Checkpoints
    appender: Appender | None = None

    def settle(self, session: Session) -> None:
        """Chain the queued entries in the committing transaction (or hand them over)."""
        if not PENDING.any(session):
            return  # sessions with nothing to audit take no lock
        # Flush the caller's changes first: flush hooks may record more entries, and the head
        # must be the last lock this transaction takes, or writers holding row locks deadlock.
        session.flush()
        items = PENDING.items(session)
        if self.appender is not None:
            # Appended once this (read) transaction has ended (committed()): its snapshot
            # then no longer holds back the database while the entries are written.
            unit_of_work.notes(session).setdefault(APPEND_KEY, []).extend(items)
        else:
            head.append(session.connection(bind_arguments={"mapper": AuditHead}), items,
                        self.checkpoints)
        PENDING.take(session)

    def committed(self, session: Session) -> None:
        """Hand a read's entries to the appender; drop (loudly) entries recorded too late."""
        to_append: list[Unchained] | None = unit_of_work.notes(session).pop(APPEND_KEY, None)
        if to_append:
            if self.appender is None:  # pragma: no cover - set in settle()
                raise AuditNotInstalled("audit entries queued on a session that is not audited")
            # Raises if they could not be committed: the caller must not answer as if the
            # read were logged.
            self.appender.append(to_append)
        late = PENDING.take(session)
        if late:
            # Recorded after the chain was written (a before_commit listener that ran after
            # ours): they cannot join this transaction any more. Loud: a programming error.
            actions = sorted({entry.action for entry in late})
            logger.error("audit entries recorded after chaining were dropped: %s", actions)


def install(
    factory: sessionmaker[Session],
    *,
    signer: CheckpointSigner | None = None,
    checkpoint_every: int = 1000,
    checkpoint_interval: timedelta | None = timedelta(minutes=5),
    appender: Appender | None = None,
) -> None:
    """Make sessions from ``factory`` chain their queued entries when they commit.

    With ``appender``, for a factory of sessions that only read: their entries describe
    no change, so they are chained by the appender, in a transaction of its own that it
    shares with other readers' entries (see Appender), and ``signer`` and the checkpoint
    settings are those of the appender's factory. The caller's commit returns once they
    are committed. Installing again on the same factory replaces the settings.
    """
    if checkpoint_every < 1:
        raise ValueError("checkpoint_every must be at least 1")
    if checkpoint_interval is not None and checkpoint_interval <= timedelta(0):
        raise ValueError("checkpoint_interval must be positive or None")
    checkpoints = Checkpoints(signer, checkpoint_every, checkpoint_interval)
    unit_of_work.install(factory, _NAME, Audited(checkpoints, appender))


def audited(session_class: type[Session]) -> Audited | None:
    """How sessions of ``session_class`` are audited (None: not installed)."""
    return unit_of_work.installed(session_class, _NAME, Audited)
