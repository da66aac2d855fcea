"""Where workers run: the in-process worker of ``privacy-hub serve`` and the
``privacy-hub worker`` command.

On SQLite one worker runs per instance, behind ``<instance>/worker.lock``; on PostgreSQL
any number may run.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from privacy_hub import redaction
from privacy_hub.jobs.worker import Worker

if TYPE_CHECKING:
    from privacy_hub.hub import Hub

log = logging.getLogger(__name__)

LOCK_FILE = "worker.lock"


def acquire_instance_lock(path: Path, stop: threading.Event, *,
                          on_wait: Callable[[], None] | None = None,
                          serving: Callable[[], bool] = lambda: True) -> int | None:
    """Wait for the exclusive lock on ``path``; the open descriptor holds it (None: stopped).

    The lock goes with the process, so a killed worker's successor takes over at once.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    waited = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if not waited and on_wait is not None:
                on_wait()
            waited = True
        if stop.wait(0.5) or not serving():
            os.close(fd)
            return None


class BackgroundWorker:
    """The in-process worker of ``privacy-hub serve``: a daemon thread in each server
    process waits for ``<instance>/worker.lock``, so one loop runs per instance and a
    restarted process takes over."""

    def __init__(self, hub: Hub, *, poll_interval: float = 1.0,
                 serving: Callable[[], bool] = lambda: True) -> None:
        self.hub = hub
        self.poll_interval = poll_interval
        #: False once the server process is shutting down: it must not take the lock then
        #: (a process still draining requests would otherwise take over from the owner that
        #: just exited, and run a loop the shutdown is about to cut)
        self.serving = serving
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="privacy-hub-worker",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _main(self) -> None:
        path = self.hub.settings.instance_path / LOCK_FILE
        try:
            fd = acquire_instance_lock(path, self._stop, serving=self.serving)
        except OSError as exc:
            log.error("background worker not started: cannot lock %s (%s)", path,
                      type(exc).__name__)
            return
        if fd is None:
            return
        if not self.serving():
            os.close(fd)
            return
        try:
            log.info("this process runs the instance's background worker")
            Worker(self.hub).run(self._stop, poll_interval=self.poll_interval)
        except Exception as exc:
            log.error("background worker stopped: %s", type(exc).__name__)
        finally:
            os.close(fd)


def configure_logging() -> None:
    """Log INFO and up to standard error, tokens redacted, unless the program configured
    logging itself."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s")
        for handler in root.handlers:
            # No token of a mailed link in any line (privacy_hub/redaction.py).
            redaction.install(handler)


def run_cli(hub: Hub, *, once: bool, poll_interval: float,
            echo: Callable[[str], None]) -> int:
    """``privacy-hub worker``: SIGTERM or SIGINT finish the current job, then exit."""
    configure_logging()
    stop = threading.Event()

    def _on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    fd: int | None = None
    try:
        if hub.settings.embedded:
            # SQLite: one worker per instance, the same lock `serve`'s worker takes.
            path = hub.settings.instance_path / LOCK_FILE
            fd = acquire_instance_lock(path, stop, on_wait=lambda: echo(
                f"waiting for {path}: another worker runs for this instance"))
            if fd is None:
                return 0
        worker = Worker(hub)
        if once:
            worker.housekeeping()
            echo(f"{worker.run_once(stop)} jobs run")
        else:
            echo(f"worker {worker.name} running (SIGTERM finishes the current job and exits)")
            worker.run(stop, poll_interval=poll_interval)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if fd is not None:
            os.close(fd)
