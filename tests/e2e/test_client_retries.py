"""The Python client retries a write the hub refused as a concurrent change, once, with the
same Idempotency-Key.

Against a small Flask app served over a real socket that answers with the hub's own problem
document (privacy_hub/web/problems.py) as told, and keeps every request's method, path and
Idempotency-Key. The same behaviour against a real hub on PostgreSQL, where the change
really conflicts, is in tests/e2e/test_concurrent_decisions.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

from privacy_hub.client import HubClient, HubError
from privacy_hub.usecases.errors import CONCURRENT_CHANGE
from privacy_hub.web.problems import problem_response

SMS = "marketing.sms"
CID = "0191f3a0-0000-7000-8000-000000000001"


class ScriptedHub:
    """Answers each request with the next of ``script`` ("race": the hub's 409
    concurrent-change; "conflict": a 409 of another kind; "ok": 201)."""

    def __init__(self) -> None:
        self.script: list[str] = []
        self.seen: list[tuple[str, str, str | None]] = []
        app = Flask(__name__)

        @app.route("/<path:path>", methods=["GET", "POST"])
        def answer(path: str) -> Response:
            self.seen.append((request.method, "/" + path,
                              request.headers.get("Idempotency-Key")))
            step = self.script.pop(0) if self.script else "ok"
            if step == "race":
                return problem_response(409, CONCURRENT_CHANGE, type_="concurrent-change")
            if step == "conflict":
                return problem_response(409, "Another system has this name.",
                                        type_="system-exists")
            if request.method == "GET":
                return jsonify({"customer_id": CID, "purpose": SMS, "allowed": True,
                                "reason": "granted", "legal_basis": "consent",
                                "valid_until": None})
            return Response(b'{"id": "e1", "status": "granted"}', status=201,
                            mimetype="application/json")

        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> ScriptedHub:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def scripted() -> Iterator[ScriptedHub]:
    with ScriptedHub() as hub:
        yield hub


def test_a_concurrent_change_is_retried_once_with_the_callers_key(
        scripted: ScriptedHub) -> None:
    scripted.script = ["race"]
    with HubClient(scripted.url, "phk_test") as client:
        recorded = client.record_consent(CID, SMS, True, idempotency_key="order-42")
    assert recorded == {"id": "e1", "status": "granted"}
    path = f"/api/v1/customers/{CID}/consents"
    assert scripted.seen == [("POST", path, "order-42"), ("POST", path, "order-42")]


@pytest.mark.parametrize("call", ["record_consent", "upsert_customer", "report_request",
                                  "unsubscribe_link"])
def test_every_write_gets_a_key_and_its_retry_reuses_it(scripted: ScriptedHub,
                                                        call: str) -> None:
    scripted.script = ["race"]
    with HubClient(scripted.url, "phk_test") as client:
        if call == "record_consent":
            client.record_consent(CID, SMS, False)
        elif call == "upsert_customer":
            client.upsert_customer({"email": "someone@example.org"})
        elif call == "report_request":
            client.report_request(CID, "newsletter", "done")
        else:
            client.unsubscribe_link(CID, SMS)
    assert len(scripted.seen) == 2
    (_, first_path, first_key), (_, again_path, again_key) = scripted.seen
    assert first_key and len(first_key) >= 32  # generated: a UUID
    assert again_key == first_key and again_path == first_path


def test_a_second_concurrent_change_is_not_retried_again(scripted: ScriptedHub) -> None:
    scripted.script = ["race", "race", "ok"]
    with HubClient(scripted.url, "phk_test") as client, pytest.raises(HubError) as raised:
        client.record_consent(CID, SMS, True)
    assert raised.value.status == 409
    assert str(raised.value.problem["type"]).endswith("/concurrent-change")
    assert len(scripted.seen) == 2
    assert scripted.seen[0][2] == scripted.seen[1][2]


def test_another_conflict_is_not_retried(scripted: ScriptedHub) -> None:
    scripted.script = ["conflict"]
    with HubClient(scripted.url, "phk_test") as client, pytest.raises(HubError) as raised:
        client.upsert_customer({"email": "someone@example.org"})
    assert raised.value.status == 409 and len(scripted.seen) == 1


def test_reads_carry_no_key_and_are_not_retried(scripted: ScriptedHub) -> None:
    scripted.script = ["race"]
    with HubClient(scripted.url, "phk_test") as client:
        result = client.check(CID, SMS)
    assert result.allowed is False  # a refused read fails closed; nothing is sent again
    assert scripted.seen == [("GET", "/api/v1/consent-check", None)]
