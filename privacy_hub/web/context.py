"""Request plumbing shared by the API, portal and console: the hub, and one session per request.

The session is committed in ``after_request`` for successful responses, before the
response is sent, so an acknowledged write is durable; anything else rolls back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, request
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

import audit
from privacy_hub.db import read_only
from privacy_hub.hub import Hub
from privacy_hub.ratelimit import RateLimiter
from privacy_hub.usecases.errors import CONCURRENT_CHANGE, UNAVAILABLE
from privacy_hub.vault.service import HotPath
from privacy_hub.web.problems import problem_response

log = logging.getLogger(__name__)


def hub() -> Hub:
    return current_app.extensions["privacy_hub"]  # type: ignore[no-any-return]


_HOT = "privacy_hub.hot_path"


def limiter() -> RateLimiter:
    """This process's rate limiter (request intake, sign-in links, banner answers)."""
    found: RateLimiter = current_app.extensions.setdefault("privacy_hub.ratelimit",
                                                           RateLimiter())
    return found


def gpc_signal() -> bool:
    """Global Privacy Control: a Sec-GPC header that is exactly "1" (GPC spec); of several
    headers, or a comma-joined one, any "1" counts."""
    values = [v.strip() for h in request.headers.getlist("Sec-GPC") for v in h.split(",")]
    return "1" in values


def hot_path() -> HotPath | None:
    """The customer hot paths' engine and group committer (None: not available here)."""
    hot: HotPath | None = current_app.extensions.get(_HOT)
    return hot


def db() -> Session:
    """The request's session (created on first use)."""
    session: Session | None = g.get("_db")
    if session is None:
        factory = hub().read_sessions if g.get("read_only") else hub().sessions
        session = g._db = factory()
    return session


F = TypeVar("F", bound=Callable[..., Any])


def read_only_request(fn: F) -> F:
    """Mark a view that never writes: its session takes no write lock (SQLite WAL).

    It may still record audit entries (reads of personal data): they are chained when
    the request commits, in a short write transaction shared with other reads (see
    audit.Appender), and the response waits for that commit.
    """

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.read_only = True
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def init_app(app: Flask) -> None:
    h: Hub = app.extensions["privacy_hub"]
    # Reads of personal data are audited; read-only requests' entries go through one
    # appender per process, so concurrent reads share a write transaction (group commit).
    appender = audit.Appender(h.sessions)
    audit.install(h.read_sessions, appender=appender)
    # The customer hot paths (lookup, create) run statements on driver connections and
    # group-commit through the same appender; they need the key store in the main database.
    app.extensions[_HOT] = (HotPath(read_only(h.engine), appender)
                            if h.keystore_engine is h.engine else None)

    @app.after_request
    def _commit(response: Response) -> Response:
        session: Session | None = g.get("_db")
        if session is None:
            return response
        if response.status_code >= 400 and not g.get("commit_on_error"):
            session.rollback()
            return response
        try:
            session.commit()
        except IntegrityError:
            # close(), not rollback(): it also settles a session whose read-only
            # transaction committed before its audit entries failed (audit.Appender).
            session.close()
            log.info("commit refused by a constraint; answered 409")
            return problem_response(409, CONCURRENT_CHANGE, type_="concurrent-change")
        except OperationalError:
            session.close()
            log.exception("commit failed")
            return problem_response(503, UNAVAILABLE, headers={"Retry-After": "1"})
        return response

    @app.errorhandler(DBAPIError)
    def _database_error(exc: DBAPIError) -> Response:
        if exc.connection_invalidated:
            # The server dropped the connection (a restart, a failover). SQLAlchemy has
            # already replaced the pool's connections; the retry gets a fresh one.
            log.warning("database connection lost in %s %s; answered 503",
                        request.method, request.url_rule)
            return problem_response(503, "The database connection was lost; nothing was "
                                    "saved. Retry the request.", headers={"Retry-After": "1"})
        # Anything else goes to the app's handler of all errors, as if this one did not exist.
        fallback = app.error_handler_spec[None][None].get(Exception)
        if fallback is None:
            raise exc
        return app.make_response(fallback(exc))  # type: ignore[arg-type]

    @app.teardown_request
    def _close(_exc: BaseException | None) -> None:
        session: Session | None = g.pop("_db", None)
        if session is not None:
            session.close()  # rolls back whatever is still open
