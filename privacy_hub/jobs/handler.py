"""What a job handler gets from the worker, and how it says an attempt did not succeed.

A handler is ``handler(context, job, payload)``: it runs one claimed job with its
decrypted payload and returns normally when the job is done, or raises JobFailed (try
again later) or JobCancelled (never again). Handlers are listed in privacy_hub/jobs/kinds.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from audit.appender import Appender
from audit.committing import audited
from privacy_hub.jobs.mail import Mailer

if TYPE_CHECKING:
    from privacy_hub.hub import Hub  # the hub wires the outbox: a type, not an import cycle


class JobFailed(Exception):
    """The attempt failed; retry later. The message becomes ``last_error``: no personal data."""


class JobCancelled(Exception):
    """The job can never succeed or is no longer wanted (e.g. its recipient was erased)."""


@dataclass(frozen=True)
class ClaimedJob:
    """An outbox job leased by a worker for one attempt."""

    id: str
    kind: str
    #: including this one
    attempts: int
    lease: str
    system_id: str | None
    event_id: str | None
    event_type: str | None
    customer_id: str | None
    payload_ct: bytes | None


class JobContext(Protocol):
    """What a handler may use of the worker running it."""

    @property
    def hub(self) -> Hub: ...

    @property
    def mailer(self) -> Mailer: ...

    @property
    def timeout(self) -> float:
        """Seconds an attempt's network calls may take."""
        ...


Handler = Callable[[JobContext, ClaimedJob, dict[str, Any]], None]


def group_committer(hub: Hub) -> Appender | None:
    """The process's group committer (audit.Appender), if it has one: a server process
    installs it for its read sessions (privacy_hub/web/context.py). The in-process worker
    writes its leases and outcomes and audits its reads through it, so that under load
    they share the requests' commits; ``privacy-hub worker`` has none and commits its own.
    """
    installed = audited(hub.read_sessions.class_)
    return installed.appender if installed is not None else None
