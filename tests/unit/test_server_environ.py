"""The served app never sees the process environment in a request's WSGI environ: granian
copies ``os.environ`` into every environ (granian/wsgi.py), which would put the secret key
and the database password one error report away from a leak."""

from __future__ import annotations

import os
from typing import Any

import pytest
from granian import wsgi as granian_wsgi

from privacy_hub.server import without_process_environment


def _served_environ(monkeypatch: pytest.MonkeyPatch, request: dict[str, Any]) -> dict[str, Any]:
    """What the app receives when granian builds the environ as granian/wsgi.py does: the
    process environment first, the request's keys over it."""
    monkeypatch.setenv("PRIVACY_HUB_SECRET_KEY", "s3cret-key-never-in-a-request")
    monkeypatch.setenv("PRIVACY_HUB_DATABASE_URL", "postgresql://hub:pa55word@db/hub")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.internal:3128")
    seen: dict[str, Any] = {}

    def probe(environ: dict[str, Any], _start_response: Any) -> list[bytes]:
        seen.update(environ)
        return [b""]

    app = without_process_environment(probe)
    app(dict(os.environ) | request, lambda *_: None)
    return seen


def test_secrets_of_the_process_environment_never_reach_a_request(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _served_environ(monkeypatch, {"REQUEST_METHOD": "GET", "PATH_INFO": "/api/v1/ping",
                                         "HTTP_HOST": "127.0.0.1:8000"})
    assert "PRIVACY_HUB_SECRET_KEY" not in seen
    assert "PRIVACY_HUB_DATABASE_URL" not in seen
    assert not any("pa55word" in str(v) or "s3cret" in str(v) for v in seen.values())
    assert "HTTP_PROXY" not in seen  # an environment variable never passes for a header
    assert seen["REQUEST_METHOD"] == "GET" and seen["PATH_INFO"] == "/api/v1/ping"
    assert seen["HTTP_HOST"] == "127.0.0.1:8000"


def test_a_requests_own_header_named_like_a_variable_is_kept(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _served_environ(monkeypatch, {"REQUEST_METHOD": "GET", "PATH_INFO": "/",
                                         "HTTP_PROXY": "sent-by-the-client"})
    assert seen["HTTP_PROXY"] == "sent-by-the-client"


def test_granian_still_builds_each_environ_from_the_process_environment() -> None:
    """The reason for the middleware: when granian stops copying os.environ into requests,
    this fails and the middleware can go."""
    names = granian_wsgi._callback_wrapper.__code__.co_names
    assert "os" in names and "environ" in names
