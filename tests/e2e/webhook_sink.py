"""A real webhook receiver for tests: an HTTP server on 127.0.0.1 that records deliveries.

It answers with scripted status codes (then a default), can answer slowly, and can hold
requests open until released, so tests can kill a worker in the middle of a delivery.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def event_id(self) -> str:
        return str(self.json["id"])


class WebhookSink:
    """Start with ``with WebhookSink() as sink:``; deliveries go to ``sink.url``."""

    def __init__(self, *, status: int = 200, delay: float = 0.0) -> None:
        self.status = status
        self.delay = delay
        self.received: list[Received] = []
        self._script: deque[int] = deque()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._hold_from: int | None = None
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- control -------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/privacy"

    def respond(self, *statuses: int) -> None:
        """Answer the next requests with these codes, in order, then with ``status``."""
        with self._lock:
            self._script.extend(statuses)

    def hold_from(self, n: int) -> None:
        """Keep the ``n``-th request (1-based) and all later ones open until ``release()``."""
        with self._lock:
            self._hold_from = n
            self._release.clear()

    def release(self) -> None:
        with self._lock:
            self._hold_from = None
        self._release.set()

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.received):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def event_ids(self) -> list[str]:
        with self._lock:
            return [r.event_id for r in self.received]

    def __enter__(self) -> WebhookSink:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    # -- serving -------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                entry = Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                 body, time.time())
                with sink._changed:
                    sink.received.append(entry)
                    number = len(sink.received)
                    status = sink._script.popleft() if sink._script else sink.status
                    hold = sink._hold_from is not None and number >= sink._hold_from
                    sink._changed.notify_all()
                if hold:
                    sink._release.wait(120)
                if sink.delay:
                    time.sleep(sink.delay)
                answer = b'{"ok":true}' if status < 400 else b'{"ok":false}'
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the sender gave up or was killed

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: tests read ``received`` instead

        return Handler


def delivered_ids(deliveries: Iterable[Received]) -> set[str]:
    return {d.event_id for d in deliveries}
