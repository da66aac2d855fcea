"""The hub served by gunicorn, as `privacy-hub serve` did up to issue 14, for
bench/server_compare.py (gunicorn is in the `bench` extra, not a dependency of the hub):

    python -m bench.gunicorn_server --host 127.0.0.1 --port 8000 --workers 2 --threads 4

Same app, same instance (PRIVACY_HUB_* in the environment), same in-process background
worker, same switch interval and access log as privacy_hub/server.py, with gthread workers.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from privacy_hub import redaction
from privacy_hub.jobs.runners import BackgroundWorker, configure_logging
from privacy_hub.server import BACKGROUND_STOP_TIMEOUT, SWITCH_INTERVAL


class _HubServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from privacy_hub.app import create_app

        return create_app()


class _HubLogger(Logger):  # type: ignore[misc]
    """gunicorn's logs, with the token of any mailed link replaced (privacy_hub/redaction.py)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        redaction.install(self.error_log)
        redaction.install(self.access_log)


def _post_worker_init(worker: Any) -> None:
    configure_logging()
    hub = getattr(worker.wsgi, "extensions", {}).get("privacy_hub")
    if hub is None:
        return
    background = BackgroundWorker(hub, serving=lambda: bool(getattr(worker, "alive", True)))
    background.start()
    worker.privacy_hub_background = background


def _post_fork(_server: Any, _worker: Any) -> None:
    sys.setswitchinterval(SWITCH_INTERVAL)
    configure_logging()


def _worker_exit(_server: Any, worker: Any) -> None:
    background = getattr(worker, "privacy_hub_background", None)
    if background is not None:
        background.stop(timeout=BACKGROUND_STOP_TIMEOUT)


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
        "access_log_format": '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms',
        "graceful_timeout": 10,
        "control_socket_disable": True,
        "timeout": 60,
    }).run()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.gunicorn_server", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--no-worker", action="store_true", help="no in-process background worker")
    args = p.parse_args(argv)
    print(f"Privacy Hub (gunicorn) on http://{args.host}:{args.port}", file=sys.stderr)
    run(host=args.host, port=args.port, workers=args.workers, threads=args.threads,
        background_worker=not args.no_worker)


if __name__ == "__main__":
    main()
