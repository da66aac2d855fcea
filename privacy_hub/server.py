"""granian, run from `privacy-hub serve`.

granian (a Rust HTTP server) runs the Flask app over WSGI in worker processes, each with
``--threads`` Python threads; the HTTP parsing, the sockets and the keep-alive handling are
Rust, outside the GIL, so more of each core is left to the hub's own Python (bench/README.md,
"Issue 14: servers side by side": the same hub, both servers, one run).

In each worker process, before it serves (``_load_app``, granian's ``target_loader``):
the GIL's switch interval, the app's logging, the app, and a thread that runs the
instance's background worker once it holds ``<instance>/worker.lock``. A worker that dies
is replaced, as gunicorn replaced its workers.

Shutdown (SIGTERM or SIGINT to the main process, or to the whole process group): the main
process flags the stop to every worker (no worker takes the background worker's lock from
then on) and SIGTERMs them; each stops accepting connections, finishes the requests in
flight (each returns only once its group-committed transaction has committed, so nothing
is left pending in audit/appender.py), then stops its background worker after its current
job, and exits. A worker still busy after ``GRACEFUL_TIMEOUT`` seconds is killed.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.util
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from functools import partial
from types import FrameType
from typing import Any

from granian.constants import HTTPModes, Interfaces
from granian.log import LogLevels
from granian.server import Server

from privacy_hub.jobs.runners import BackgroundWorker, configure_logging

#: seconds a thread may hold the GIL while others wait for it (CPython's default: 0.005)
SWITCH_INTERVAL = 0.001
#: seconds a worker has after SIGTERM to finish its requests (and its background job)
GRACEFUL_TIMEOUT = 10
#: seconds the background worker has to finish its current job once serving has ended
BACKGROUND_STOP_TIMEOUT = 8.0

#: Paths only: identifiers never travel in URLs, and query strings are not logged; the
#: tokens some links carry in their paths are replaced by the RedactTokens filter below.
ACCESS_LOG_FORMAT = '%(addr)s "%(method)s %(path)s" %(status)d %(dt_ms).0fms'
#: what the WSGI app is, for granian's process titles and messages
TARGET = "privacy_hub.app:create_app"


def logging_config() -> dict[str, Any]:
    """granian's logging (its ``_granian`` and ``granian.access`` loggers): its own lines on
    standard error, the access log on standard output, as gunicorn had them; both handlers
    pass every line through privacy_hub/redaction.py first."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": "privacy_hub.redaction.RedactTokens"}},
        "formatters": {
            "generic": {"format": "%(asctime)s [%(process)d] %(levelname)s granian: %(message)s"},
            "access": {"format": "%(message)s"},
        },
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "generic",
                        "filters": ["redact"], "stream": "ext://sys.stderr"},
            "access": {"class": "logging.StreamHandler", "formatter": "access",
                       "filters": ["redact"], "stream": "ext://sys.stdout"},
        },
        "loggers": {
            "_granian": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "granian.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }


def _load_app(_target: str, *, background_worker: bool, stopping: Any) -> Any:
    """In each worker process, before it serves: hand the GIL over sooner, log, load the app
    and start the background worker thread.

    The switch interval: a request thread that holds SQLite's write lock (or PostgreSQL's
    audit head lock) needs the GIL back after each statement and after the fsync; with the
    default 5 ms, a thread busy with another request's Python keeps it that long, and every
    other writer of both processes waits too.
    """
    # A stop signal while the app loads (granian sets its handlers only afterwards; a
    # forked worker would run the main process's): noted, and the worker then serves nothing.
    told_to_stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: told_to_stop.set())
    sys.setswitchinterval(SWITCH_INTERVAL)
    configure_logging()  # the app's own log lines, tokens redacted, with or without a worker
    # Imported here, in the process that serves: the app and Flask load only there.
    from privacy_hub.app import create_app

    app = create_app()
    app.wsgi_app = without_process_environment(app.wsgi_app)  # type: ignore[method-assign]
    if told_to_stop.is_set():
        _await_the_main_process(stopping)
        sys.exit(0)
    hub = app.extensions.get("privacy_hub")
    background = None
    if background_worker and hub is not None:
        background = BackgroundWorker(hub, serving=lambda: not stopping.is_set())
        background.start()
    # Run when the worker has finished serving (its requests drained), before the process
    # exits: multiprocessing's exit handlers, which granian's worker processes run.
    multiprocessing.util.Finalize(None, _on_exit, args=(stopping, background), exitpriority=10)
    return app


#: the keys of a WSGI environ that granian sets from the request (besides HTTP_* headers)
_REQUEST_KEYS = frozenset({
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
    "CONTENT_LENGTH", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR",
    "REMOTE_PORT", "REQUEST_URI", "RAW_URI", "GATEWAY_INTERFACE", "SERVER_SOFTWARE",
})


def without_process_environment(wsgi_app: Callable[..., Iterable[bytes]]
                                ) -> Callable[..., Iterable[bytes]]:
    """The app, given each request's environ without the process environment in it.

    granian starts every request's environ from a copy of ``os.environ`` taken when the
    worker starts (granian/wsgi.py), so ``PRIVACY_HUB_SECRET_KEY`` and a database URL with
    its password would ride along in every request, one debug page or error report away
    from a leak, and a variable such as ``HTTP_PROXY`` would pass for a request header
    ("httpoxy"). The variables present now are removed; a request's own header keeps its
    name only if its value differs from the variable's.
    """
    inherited = [(key, value) for key, value in os.environ.items()
                 if key not in _REQUEST_KEYS and not key.startswith("wsgi.")]

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        for key, value in inherited:
            if environ.get(key) == value:
                del environ[key]
        return wsgi_app(environ, start_response)

    return app


def _on_exit(stopping: Any, background: BackgroundWorker | None) -> None:
    """A worker's last act: let its background worker finish its job, then exit."""
    _await_the_main_process(stopping)
    if background is not None:
        background.stop(timeout=BACKGROUND_STOP_TIMEOUT)


def _await_the_main_process(stopping: Any) -> None:
    """A service manager signals the main process and the workers at once: give the main
    process a moment to note that it is stopping them, so that no worker's exit looks like
    a crash to it (an error, a replacement, exit status 1). A worker stopped alone (no
    flag) exits after the wait, and the main process replaces it."""
    stopping.wait(1.0)


def _flag_stop_on_signals(server: Any, stopping: Any) -> None:
    """In the main process, once granian has set its handlers: SIGTERM and SIGINT flag the
    stop to the workers (none takes the background worker's lock from then on, and none is
    taken for crashed when it exits), then do what granian does (stop them gracefully)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)

        def handler(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
            for worker in getattr(server, "wrks", ()):  # first: they exit once flagged
                worker.interrupt_by_parent = True
            stopping.set()
            if callable(previous):
                previous(signum, frame)

        signal.signal(sig, handler)


def _start_method() -> str:
    """The way granian starts its workers (granian.server.mp.WorkerProcess): fork or spawn."""
    method = multiprocessing.get_start_method()
    return method if method in {"fork", "spawn"} else "spawn"


def run(*, host: str, port: int, workers: int, threads: int,
        background_worker: bool = True) -> None:
    # Made in the context the workers are started in, so that they can share it.
    stopping = multiprocessing.get_context(_start_method()).Event()
    server = Server(
        TARGET,
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        http=HTTPModes.http1,
        websockets=False,
        workers=workers,
        blocking_threads=threads,
        workers_kill_timeout=GRACEFUL_TIMEOUT,
        # As gunicorn did: a worker that dies (a crash, the OOM killer) is replaced, and
        # another process takes over the background worker's lock.
        respawn_failed_workers=True,
        log_level=LogLevels.info,
        log_dictconfig=logging_config(),
        log_access=True,
        log_access_format=ACCESS_LOG_FORMAT,
    )
    server.on_startup(partial(_flag_stop_on_signals, server, stopping))
    server.serve(target_loader=partial(_load_app, background_worker=background_worker,
                                       stopping=stopping))
