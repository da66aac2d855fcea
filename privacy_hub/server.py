"""gunicorn, run from `privacy-hub serve`."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication


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


def run(*, host: str, port: int, workers: int, threads: int) -> None:
    _HubServer({
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "accesslog": "-",
        # Paths only: identifiers never travel in URLs, and query strings are not logged.
        "access_log_format": '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms',
        "graceful_timeout": 10,
        "timeout": 60,
    }).run()
