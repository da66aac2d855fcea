"""gunicorn, run from `privacy-hub serve`."""

from __future__ import annotations

import sys
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from privacy_hub import redaction
from privacy_hub.jobs.runners import BackgroundWorker, configure_logging

#: seconds a thread may hold the GIL while others wait for it (CPython's default: 0.005)
SWITCH_INTERVAL = 0.001


class _HubServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # Imported here, in the process that serves: the app and Flask load only there.
        from privacy_hub.app import create_app

        return create_app()


class _HubLogger(Logger):  # type: ignore[misc]
    """gunicorn's logs, with the token of any mailed link replaced (privacy_hub/redaction.py):
    the access log's request line and path, and the error log's "Error handling request"."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        redaction.install(self.error_log)
        redaction.install(self.access_log)


def _post_worker_init(worker: Any) -> None:
    """In each gunicorn worker: a daemon thread that runs the instance's background worker
    once it holds ``<instance>/worker.lock`` (one loop per instance; a restarted process
    takes over)."""
    configure_logging()
    hub = getattr(worker.wsgi, "extensions", {}).get("privacy_hub")
    if hub is None:  # the app failed to load; gunicorn serves its error page instead
        return
    # gunicorn clears ``alive`` when the worker is told to stop (SIGTERM, SIGQUIT).
    background = BackgroundWorker(hub, serving=lambda: bool(getattr(worker, "alive", True)))
    background.start()
    worker.privacy_hub_background = background


def _post_fork(_server: Any, _worker: Any) -> None:
    """In each gunicorn worker: hand the GIL over sooner (1 ms, not 5 ms), and log.

    A request thread that holds SQLite's write lock (or PostgreSQL's audit head lock)
    needs the GIL back after each statement and after the fsync; with the default
    interval, a thread busy with another request's Python keeps it up to 5 ms, and every
    other writer of both processes waits that long too.
    """
    sys.setswitchinterval(SWITCH_INTERVAL)
    configure_logging()  # the app's own log lines, tokens redacted, with or without a worker


def _worker_exit(_server: Any, worker: Any) -> None:
    background = getattr(worker, "privacy_hub_background", None)
    if background is not None:
        background.stop(timeout=8.0)  # finish the current job within graceful_timeout


def run(*, host: str, port: int, workers: int, threads: int,
        background_worker: bool = True) -> None:
    hooks: dict[str, Any] = {"post_fork": _post_fork}
    if background_worker:
        hooks.update(post_worker_init=_post_worker_init, worker_exit=_worker_exit)
    _HubServer({
        **hooks,
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "accesslog": "-",
        "logger_class": _HubLogger,
        # Paths only: identifiers never travel in URLs, and query strings are not logged;
        # the tokens some links carry in their paths are replaced by _HubLogger.
        "access_log_format": '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms',
        "graceful_timeout": 10,
        # gunicorn's control socket sits at one path per user; several hubs would share it.
        "control_socket_disable": True,
        "timeout": 60,
    }).run()
