"""Every route that carries a token in its path or query has it redacted from the logs
(R-SEC-03): privacy_hub/redaction.py against the app's URL map and the mail links.

The served hub's whole output is checked in tests/e2e/test_no_tokens_in_logs.py; here each
route and each logging path is held to it, so a new token route cannot slip past.
"""

from __future__ import annotations

import io
import logging
import re
import secrets
from datetime import timedelta
from functools import partial
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from gunicorn.config import Config

from privacy_hub.jobs.mail import _LINKS  # how the hub renders a mail's link
from privacy_hub.jobs.mail_texts import TEMPLATES
from privacy_hub.redaction import RedactTokens, redact
from privacy_hub.server import _HubLogger


@pytest.fixture
def db_backend() -> str:
    """The URL map and the logs do not depend on the database: SQLite only."""
    return "sqlite"


def _token() -> str:
    return secrets.token_urlsafe(32)


def _argument(token: str, match: re.Match[str]) -> str:
    """A value for a rule's ``<argument>``: the token, or an id."""
    return token if match.group(1) == "token" else "01a25221-dfa7-749a-a000-000000000001"


def test_every_route_with_a_token_in_its_path_is_redacted(app: Flask) -> None:
    rules = [r for r in app.url_map.iter_rules() if "token" in r.arguments]
    assert {r.rule for r in rules} >= {"/exports/<string:token>", "/unsubscribe/<string:token>"}
    for rule in rules:
        token = _token()
        path = re.sub(r"<(?:\w+:)?(\w+)>", partial(_argument, token), rule.rule)
        for line in (path, f"GET {path} HTTP/1.1", f"http://hub.example{path}?x=1"):
            clean = redact(line)
            assert token not in clean, rule.rule
            assert "[token]" in clean


def test_every_mailed_link_with_a_token_is_redacted() -> None:
    with_token = [name for name, spec in TEMPLATES.items() if spec.link and "token" in spec.link]
    assert {"consent_confirmation", "portal_sign_in", "request_verification"} <= set(with_token)
    for name in with_token:
        token = _token()
        link = _LINKS.from_string(TEMPLATES[name].link or "").render(
            base_url="http://127.0.0.1:8000", token=token,
            request_id="01a25221-dfa7-749a-a000-000000000001")
        assert token in link
        clean = redact(link)
        assert token not in clean and "token=[redacted]" in clean


def test_other_paths_and_lines_are_left_as_they_are() -> None:
    for line in ('127.0.0.1 "GET /api/v1/requests/01a2/export" 200 12 3ms',
                 "mail 01a2 (portal_sign_in) written to outbox/20261207T201121-01a2.eml",
                 '"GET /portal/download/01a2.zip" 200', "no slash at all"):
        assert redact(line) == line


def test_the_filter_redacts_a_records_arguments() -> None:
    token = _token()
    logger = logging.getLogger("tests.redaction")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactTokens())
    logger.addHandler(handler)
    try:
        logger.warning("Error handling request %s %s", "GET", f"/consent/confirm?token={token}")
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue().strip() == "Error handling request GET /consent/confirm?token=[redacted]"


def _access_line(logger: _HubLogger, method: str, raw_uri: str) -> str:
    path, _, query = raw_uri.partition("?")
    environ = {"REQUEST_METHOD": method, "RAW_URI": raw_uri, "PATH_INFO": path,
               "QUERY_STRING": query, "SERVER_PROTOCOL": "HTTP/1.1",
               "REMOTE_ADDR": "127.0.0.1", "HTTP_REFERER": f"http://hub.example{raw_uri}"}
    resp: Any = SimpleNamespace(status="200 OK", sent=10, headers=[])
    req: Any = SimpleNamespace(headers=[])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.access_log.addHandler(handler)
    try:
        logger.access(resp, req, environ, timedelta(milliseconds=3))
    finally:
        logger.access_log.removeHandler(handler)
    return stream.getvalue()


@pytest.mark.parametrize("fmt", ['%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms',  # the hub's
                                 '%(h)s "%(r)s" %(s)s "%(f)s" %(q)s'])       # gunicorn's own
def test_the_servers_access_log_shows_token_routes_without_their_token(fmt: str) -> None:
    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", fmt)
    logger = _HubLogger(cfg)
    token = _token()
    for method, uri in (("GET", f"/exports/{token}"), ("POST", f"/unsubscribe/{token}"),
                        ("GET", f"/portal/sign-in/confirm?token={token}"),
                        ("GET", f"/requests/01a2/verify?token={token}&lang=de")):
        line = _access_line(logger, method, uri)
        assert line.strip() and token not in line, line
    assert '"GET /exports/[token]' in _access_line(logger, "GET", f"/exports/{token}")
