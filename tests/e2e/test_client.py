"""The Python client (privacy_hub/client.py) against a real hub, and against broken ones.

The hub is `privacy-hub init --demo` plus `privacy-hub serve`, run as subprocesses on a
free loopback port with the embedded SQLite default. The broken hubs are a closed port
and a tiny local HTTP server that answers 500, garbage, or not in time.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from privacy_hub import client as client_mod
from privacy_hub.client import CheckResult, Denied, HubClient, HubError, HubUnavailable

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SMS = "marketing.sms"            # consent, direct marketing; fields phone, first_name
FULFILMENT = "orders.fulfilment"  # contract
ANALYTICS = "analytics.behaviour"  # consent


# -- a real hub in subprocesses ------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningHub:
    """A `privacy-hub serve` process group and the demo system's key."""

    base_url: str
    port: int
    api_key: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def worker_pids(self) -> list[int]:
        """The server's worker processes: the main process's children."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(p) for p in children.read_text().split()] if children.exists() else []


def hub_env(instance: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIVACY_HUB_")}
    # NORMAL: faster commits; what other processes see after a commit is the same.
    env.update({"PRIVACY_HUB_INSTANCE_PATH": str(instance),
                "PRIVACY_HUB_SQLITE_SYNCHRONOUS": "NORMAL", **(extra or {})})
    return env


@contextlib.contextmanager
def running_hub(workdir: Path, *, workers: int = 1,
                env: Mapping[str, str] | None = None) -> Iterator[RunningHub]:
    """`privacy-hub init --demo`, then `serve --workers N` until /readyz says 200."""
    command = [sys.executable, "-m", "privacy_hub"]
    environ = hub_env(workdir / "instance", env)
    init = subprocess.run([*command, "init", "--demo"], env=environ, cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert init.returncode == 0, init.stdout + init.stderr
    key = re.search(r"^api_key: (\S+)$", init.stdout, re.M)
    assert key, init.stdout
    port = free_port()
    log_path = workdir / f"serve-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "serve", "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(workers)],
            env=environ, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not _ready(port):
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "hub not ready:\n" + log_path.read_text()
            time.sleep(0.1)
        yield RunningHub(f"http://127.0.0.1:{port}", port, key.group(1), process, log_path)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def _ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    with running_hub(tmp_path_factory.mktemp("hub")) as running:
        yield running


@pytest.fixture
def client(hub: RunningHub) -> Iterator[HubClient]:
    with HubClient(hub.base_url, hub.api_key) as c:
        yield c


def new_customer(client: HubClient, **fields: Any) -> str:
    tag = uuid.uuid4().hex[:10]
    profile = client.upsert_customer({"email": f"client-{tag}@example.com",
                                      "first_name": "Test", **fields})
    return str(profile["id"])


# -- a hub that fails -------------------------------------------------------------------

class BrokenHub:
    """A loopback HTTP server answering every request as ``mode`` says.

    ``500``: a problem document; ``garbage``: 200 with HTML; ``slow``: an *allow*, but only
    after ``delay`` seconds; ``drop``: an allow, then the connection is closed unannounced.
    """

    ALLOW = {"customer_id": "x", "purpose": SMS, "allowed": True, "reason": "granted",
             "legal_basis": "consent", "valid_until": None}

    def __init__(self, mode: str, *, delay: float = 5.0) -> None:
        self.mode = mode
        self.delay = delay
        self.requests = 0
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> BrokenHub:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        broken = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                broken.requests += 1
                status, body, kind = 200, json.dumps(broken.ALLOW).encode(), "application/json"
                if broken.mode == "500":
                    status, kind = 500, "application/problem+json"
                    body = b'{"type":"about:blank","title":"Internal error","status":500}'
                elif broken.mode == "garbage":
                    body, kind = b"<html>allowed</html>", "text/html"
                elif broken.mode == "slow":
                    broken._stop.wait(broken.delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up, as it should
                if broken.mode == "drop":
                    self.close_connection = True  # no "Connection: close": a stale keep-alive

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # bound once, then released: nothing listens


# -- the client module itself --------------------------------------------------------------

def test_the_client_imports_without_flask_or_sqlalchemy() -> None:
    code = ("import sys, privacy_hub.client; "
            "heavy = {'flask', 'werkzeug', 'sqlalchemy', 'marshmallow', 'cryptography'}; "
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True, timeout=30)
    assert out.stdout.strip() == "[]"


def test_the_client_repr_never_shows_the_key() -> None:
    assert "secret-key" not in repr(HubClient("http://127.0.0.1:1", "secret-key"))


def test_a_base_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="http"):
        HubClient("ftp://hub", "k")


# -- round trips against a real hub ------------------------------------------------------

def test_check_follows_grant_and_withdrawal(client: HubClient) -> None:
    """R-GATE-01, R-GATE-02: deny by default; allow after a grant; deny right after withdrawal."""
    cid = new_customer(client)
    first = client.check(cid, SMS)
    assert first == CheckResult(cid, SMS, False, "not_granted", "consent", None)

    event = client.record_consent(cid, SMS, True, source="checkout",
                                  collection_method="web_form",
                                  evidence={"ui_element": "checkout-sms-checkbox"})
    assert event["status"] == "granted" and event["granted"] is True
    assert event["purpose"] == SMS and event["receipt_id"]
    granted = client.check(cid, SMS)
    assert granted.allowed and granted.reason == "granted" and granted.legal_basis == "consent"
    assert client.is_allowed(cid, SMS)

    assert client.record_consent(cid, SMS, False)["status"] == "withdrawn"
    after = client.check(cid, SMS)
    assert not after.allowed and after.reason == "withdrawn"


def test_a_contract_purpose_is_allowed_on_its_basis(client: HubClient) -> None:
    """R-GATE-05: a non-consent basis allows, and says so."""
    result = client.check(new_customer(client), FULFILMENT)
    assert result.allowed and result.reason == "legal_basis" and result.legal_basis == "contract"


def test_unknown_purpose_and_unknown_customer_are_denied(client: HubClient) -> None:
    """R-GATE-01: unknown purpose or subject never allows."""
    unknown_purpose = client.check(new_customer(client), "no.such_purpose")
    assert not unknown_purpose.allowed and unknown_purpose.reason == "unknown_purpose"
    stranger = client.check(str(uuid.uuid4()), SMS)
    assert not stranger.allowed and stranger.reason == "unknown_customer"


def test_a_historical_check_answers_as_it_was(client: HubClient) -> None:
    cid = new_customer(client)
    client.record_consent(cid, SMS, True)
    time.sleep(0.05)
    between = time.time()
    time.sleep(0.05)
    client.record_consent(cid, SMS, False)

    then = client.check(cid, SMS, at=datetime.fromtimestamp(between, UTC))
    assert then.allowed and then.reason == "granted"
    assert client.check(cid, SMS).reason == "withdrawn"


def test_check_many_keeps_order_across_chunks(client: HubClient,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [new_customer(client) for _ in range(4)]
    client.record_consent(ids[1], SMS, True)
    client.record_consent(ids[3], SMS, True)
    asked = [ids[0], ids[1], "not-a-uuid", ids[2], ids[3]]
    monkeypatch.setattr(client_mod, "MAX_BATCH", 2)  # three requests instead of one

    results = client.check_many(asked, SMS)

    assert [r.customer_id for r in results] == asked
    assert [r.allowed for r in results] == [False, True, False, False, True]
    assert [r.reason for r in results] == ["not_granted", "granted", "unknown_customer",
                                           "not_granted", "granted"]
    assert client.check_many([], SMS) == []


def test_audience_yields_exactly_the_allowed_ids(client: HubClient) -> None:
    ids = [new_customer(client) for _ in range(3)]
    client.record_consent(ids[0], ANALYTICS, True)
    client.record_consent(ids[2], ANALYTICS, True)
    client.record_consent(ids[2], ANALYTICS, False)

    assert list(client.audience(ANALYTICS, [*ids, str(uuid.uuid4())])) == [ids[0]]

    everyone = list(client.audience(ANALYTICS, page_size=1))  # one id a page: follows cursors
    assert ids[0] in everyone and ids[1] not in everyone and ids[2] not in everyone
    assert len(everyone) == len(set(everyone)) >= 2  # two demo customers gave it too
    assert sorted(everyone) == sorted(client.audience(ANALYTICS))


def test_read_data_is_purpose_bound_and_gated(client: HubClient) -> None:
    """R-GATE-02: data access stops with the withdrawal."""
    cid = new_customer(client, phone="+4915112340000", last_name="Hidden")
    with pytest.raises(Denied) as not_yet:
        client.read_data(cid, SMS)
    assert not_yet.value.reason == "not_granted" and not_yet.value.status == 403

    client.record_consent(cid, SMS, True)
    data = client.read_data(cid, SMS)
    assert data["data"] == {"phone": "+4915112340000", "first_name": "Test"}

    client.record_consent(cid, SMS, False)
    with pytest.raises(Denied) as withdrawn:
        client.read_data(cid, SMS)
    assert withdrawn.value.reason == "withdrawn"
    with pytest.raises(HubError) as unknown:
        client.read_data(cid, "no.such_purpose")
    assert unknown.value.status == 404 and not isinstance(unknown.value, Denied)


def test_record_consent_errors_carry_the_problem(client: HubClient) -> None:
    cid = new_customer(client)
    with pytest.raises(HubError) as wrong_basis:
        client.record_consent(cid, FULFILMENT, True)
    assert wrong_basis.value.status == 422 and wrong_basis.value.problem["status"] == 422
    with pytest.raises(HubError) as bad_field:
        client.record_consent(cid, SMS, True, collection_method="Not A Code")
    assert "collection_method" in bad_field.value.problem["errors"]
    with pytest.raises(HubError) as nobody:
        client.record_consent(str(uuid.uuid4()), SMS, True)
    assert nobody.value.status == 404


def test_a_retried_decision_is_recorded_once(client: HubClient) -> None:
    cid = new_customer(client)
    first = client.record_consent(cid, SMS, True, idempotency_key="retry-1-" + cid)
    again = client.record_consent(cid, SMS, True, idempotency_key="retry-1-" + cid)
    assert again["id"] == first["id"]


def test_upsert_and_lookup(client: HubClient) -> None:
    external = "shop-" + uuid.uuid4().hex[:8]
    cid = new_customer(client, external_id=external)
    assert client.upsert_customer({"external_id": external, "email": f"{external}@example.com",
                                   "last_name": "Changed"})["id"] == cid
    assert client.lookup(external_id=external) == [cid]
    assert client.lookup(email=f"{external}@example.com") == [cid]
    assert client.lookup(email="nobody-" + external + "@example.com") == []
    with pytest.raises(ValueError, match="exactly one"):
        client.lookup()
    with pytest.raises(ValueError, match="exactly one"):
        client.lookup(email="a@example.com", phone="+4915100000000")


def test_one_client_serves_many_threads(client: HubClient) -> None:
    cid = new_customer(client)
    client.record_consent(cid, SMS, True)
    results: list[bool] = []

    def work() -> None:
        results.extend(client.is_allowed(cid, SMS) for _ in range(10))

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [True] * 60


def test_a_wrong_key_fails_closed(hub: RunningHub) -> None:
    with HubClient(hub.base_url, "phk_wrong") as wrong:
        result = wrong.check(str(uuid.uuid4()), SMS)
        assert not result.allowed and result.reason == "hub_unavailable"
        with pytest.raises(HubError) as unauthorised:
            wrong.upsert_customer({"email": "x@example.com"})
        assert unauthorised.value.status == 401


# -- fail closed (R-GATE-09) -----------------------------------------------------------------

def _assert_denied_quickly(client: HubClient, *, within: float) -> None:
    cid = str(uuid.uuid4())
    started = time.monotonic()
    result = client.check(cid, SMS)
    assert time.monotonic() - started < within
    assert result == CheckResult(cid, SMS, False, "hub_unavailable")
    assert client.is_allowed(cid, SMS) is False
    many = client.check_many([cid, str(uuid.uuid4())], SMS)
    assert [(r.allowed, r.reason) for r in many] == [(False, "hub_unavailable")] * 2


def test_a_closed_port_fails_closed() -> None:
    """R-GATE-09: the hub unreachable → deny."""
    with HubClient(closed_port_url(), "k", timeout=0.5) as c:
        _assert_denied_quickly(c, within=1.0)
        with pytest.raises(HubUnavailable):
            list(c.audience(SMS))
        with pytest.raises(HubUnavailable):
            c.record_consent(str(uuid.uuid4()), SMS, True)


def test_a_500_fails_closed() -> None:
    """R-GATE-09: the hub errs → deny."""
    with BrokenHub("500") as broken, HubClient(broken.url, "k", timeout=0.5) as c:
        _assert_denied_quickly(c, within=1.0)
        with pytest.raises(HubUnavailable) as error:
            c.read_data(str(uuid.uuid4()), SMS)
        assert error.value.status == 500


def test_an_answer_past_the_timeout_fails_closed() -> None:
    """R-GATE-09: an *allow* that comes too late is a deny."""
    with BrokenHub("slow", delay=5) as broken, HubClient(broken.url, "k", timeout=0.3) as c:
        _assert_denied_quickly(c, within=1.0)
        with pytest.raises(HubUnavailable):
            next(c.audience(SMS))


def test_a_garbled_answer_fails_closed() -> None:
    with BrokenHub("garbage") as broken, HubClient(broken.url, "k", timeout=0.5) as c:
        _assert_denied_quickly(c, within=1.0)


def test_a_silently_closed_connection_is_reopened() -> None:
    """A kept-alive connection the server dropped is retried once on a new one."""
    with BrokenHub("drop") as broken, HubClient(broken.url, "k", timeout=0.5) as c:
        assert [c.check("x", SMS).allowed for _ in range(3)] == [True] * 3
        assert broken.requests == 3


def test_failing_closed_logs_a_warning_without_identifiers(
        caplog: pytest.LogCaptureFixture) -> None:
    cid = str(uuid.uuid4())
    caplog.set_level(logging.WARNING, logger="privacy_hub.client")
    with BrokenHub("500") as broken, HubClient(broken.url, "phk_secret_value") as c:
        c.check(cid, SMS)
    with HubClient(closed_port_url(), "phk_secret_value", timeout=0.5) as c:
        c.check(cid, SMS)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and all("failed closed" in m for m in messages)
    assert not any(cid in m or "phk_secret_value" in m or "127.0.0.1" in m for m in messages)


# -- webhooks ----------------------------------------------------------------------------------

def _signed(secret: str, body: bytes, t: int) -> str:
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def test_verify_webhook_accepts_only_a_fresh_exact_signature() -> None:
    secret = "whsec_test_" + uuid.uuid4().hex
    body = json.dumps({"id": str(uuid.uuid4()), "type": "consent.changed",
                       "created_at": "2026-11-23T10:15:00Z",
                       "data": {"customer_id": str(uuid.uuid4()), "purpose": SMS}}).encode()
    now = int(time.time())
    header = _signed(secret, body, now)

    assert HubClient.verify_webhook(body, header, secret)
    assert not HubClient.verify_webhook(body.replace(b"consent", b"Consent"), header, secret)
    assert not HubClient.verify_webhook(body, header, "whsec_other")
    assert not HubClient.verify_webhook(body, _signed(secret, body, now - 301), secret)
    assert HubClient.verify_webhook(body, _signed(secret, body, now - 301), secret,
                                    tolerance=600)
    assert not HubClient.verify_webhook(body, "t=abc,v1=00", secret)
    assert not HubClient.verify_webhook(body, "", secret)
