"""Every route that carries a token in its path or query has it redacted from the logs
(R-SEC-03): privacy_hub/redaction.py against the app's URL map and the mail links.

The served hub's whole output is checked in tests/e2e/test_no_tokens_in_logs.py; here each
route and each logging path is held to it, so a new token route cannot slip past.
"""

from __future__ import annotations

import io
import json
import logging
import re
import secrets
import subprocess
import sys
from functools import partial

import pytest
from flask import Flask

from privacy_hub.jobs.mail import _LINKS  # how the hub renders a mail's link
from privacy_hub.jobs.mail_texts import TEMPLATES
from privacy_hub.redaction import RedactTokens, redact


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


# What a granian worker does (granian.server.mp: configure_logging with the hub's config,
# then one access-log call per answered request, wsgi.py), in a process of its own so this
# test's logging stays as it was.
_GRANIAN_ACCESS = """
import json, sys, time
from granian.log import LogLevels, configure_logging, log_request_builder
from privacy_hub.server import ACCESS_LOG_FORMAT, logging_config
configure_logging(LogLevels.info, logging_config())
log = log_request_builder(sys.argv[1] or ACCESS_LOG_FORMAT)
for method, uri in json.loads(sys.stdin.read()):
    path, _, query = uri.partition("?")
    log(time.time(), time.perf_counter(), {"addr_remote": "127.0.0.1", "path": path,
        "qs": query, "method": method, "scheme": "http", "protocol": "HTTP/1.1",
        "headers": lambda name: None}, 200)
"""


def _access_lines(requests: list[tuple[str, str]], fmt: str = "") -> list[str]:
    """The access log lines a granian worker of `privacy-hub serve` writes for ``requests``."""
    done = subprocess.run([sys.executable, "-c", _GRANIAN_ACCESS, fmt], input=json.dumps(requests),
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.splitlines()


@pytest.mark.parametrize("fmt", ["",  # the hub's ACCESS_LOG_FORMAT
                                 '%(addr)s "%(method)s %(path)s?%(query_string)s" %(status)d'])
def test_the_servers_access_log_shows_token_routes_without_their_token(fmt: str) -> None:
    """R-SEC-03: granian's access log, configured as `privacy-hub serve` configures it."""
    token = _token()
    requests = [("GET", f"/exports/{token}"), ("POST", f"/unsubscribe/{token}"),
                ("GET", f"/portal/sign-in/confirm?token={token}"),
                ("GET", f"/requests/01a2/verify?token={token}&lang=de")]
    lines = _access_lines(requests, fmt)
    assert len(lines) == len(requests), lines
    assert all(token not in line for line in lines), lines
    assert '"GET /exports/[token]' in lines[0]
    assert '"POST /unsubscribe/[token]' in lines[1]


def test_the_servers_access_log_has_paths_without_query_strings() -> None:
    """Identifiers never travel in URLs, and what a query carries is not logged at all."""
    lines = _access_lines([("GET", "/api/v1/consent-check?customer_id=01a2&purpose=x")])
    assert lines == [lines[0]] and '"GET /api/v1/consent-check" 200 ' in lines[0], lines
    assert "01a2" not in lines[0] and "purpose" not in lines[0]
