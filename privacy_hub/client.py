"""Python client for the hub's API, for CRM services (API.md "Consent", "The gate").

Standard library only, so a service can import it without Flask or SQLAlchemy. The gate
calls fail closed (R-GATE-09): when the hub cannot answer, ``check`` says "not allowed"
with reason ``hub_unavailable``. Nothing is cached: every check asks the hub, so a
withdrawal counts for the very next check (R-GATE-02). Every write carries an
``Idempotency-Key``, and one the hub refused as a concurrent change (409
``concurrent-change``: nothing was saved) is sent once more with the same key.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import ssl
import threading
import uuid
import weakref
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from privacy_hub.client_answers import CheckResult
from privacy_hub.jobs import webhooks

__all__ = ["CheckResult", "Denied", "HubClient", "HubError", "HubUnavailable"]

log = logging.getLogger(__name__)

MAX_BATCH = 10_000  # the hub's limit per batch check or audience list (API.md "The gate")
HUB_UNAVAILABLE = "hub_unavailable"
UNKNOWN_PURPOSE = "unknown_purpose"
_USER_AGENT = "privacy-hub-client/1"
# A kept-alive connection the server has since closed fails like this before any answer;
# the request never reached the application, so it is sent once more on a new connection.
_STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                     ConnectionAbortedError)


class HubError(Exception):
    """The hub answered with an error (``status``, the RFC 9457 ``problem`` document)."""

    def __init__(self, status: int | None, problem: Mapping[str, Any] | None = None,
                 message: str | None = None) -> None:
        self.status = status
        self.problem: dict[str, Any] = dict(problem or {})
        super().__init__(message or self.problem.get("detail") or f"hub answered {status}")


class HubUnavailable(HubError):
    """No usable answer: connection failure, timeout, a 5xx or a malformed response."""


class Denied(HubError):
    """The gate denies this use (403); ``reason`` is the gate's reason, e.g. ``withdrawn``."""

    def __init__(self, reason: str, problem: Mapping[str, Any] | None = None) -> None:
        self.reason = reason
        super().__init__(403, problem, f"denied by the gate: {reason}")


class _Local(threading.local):
    conn: http.client.HTTPConnection | None = None
    pid: int = 0


class HubClient:
    """A client for one hub, safe to share between threads (one connection per thread)."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 2.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("base_url must be an http:// or https:// URL")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._auth = f"Bearer {api_key}"
        self._ssl = ssl.create_default_context() if self._https else None
        self._local = _Local()
        self._lock = threading.Lock()
        # Weak: a connection whose thread has ended goes with it.
        self._open: weakref.WeakSet[http.client.HTTPConnection] = weakref.WeakSet()

    def __repr__(self) -> str:  # never the key
        return f"HubClient({self.base_url!r})"

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection this client opened (in any thread)."""
        with self._lock:
            conns, self._open = list(self._open), weakref.WeakSet()
        for conn in conns:
            conn.close()

    # -- the gate -------------------------------------------------------------------

    def check(self, customer_id: str, purpose: str, *,
              at: datetime | str | None = None) -> CheckResult:
        """May ``purpose`` use this customer's data now (or at ``at``, an aware time)?

        Fails closed: any failure is ``allowed=False``, reason ``hub_unavailable``.
        """
        query = {"customer_id": customer_id, "purpose": purpose}
        if at is not None:
            query["at"] = at.isoformat() if isinstance(at, datetime) else at
        try:
            body = self._call("GET", "/api/v1/consent-check", query=query)
            return CheckResult.of_answer(customer_id, purpose, body)
        except HubError as exc:
            return CheckResult.denied(customer_id, purpose, _deny_reason(exc))
        except Exception as exc:  # a malformed answer, or a bug here: deny, never raise
            log.warning("consent check failed closed: %s", type(exc).__name__)
            return CheckResult.denied(customer_id, purpose, HUB_UNAVAILABLE)

    def is_allowed(self, customer_id: str, purpose: str) -> bool:
        """``check(...).allowed``: False whenever the hub cannot say yes (R-GATE-09)."""
        return self.check(customer_id, purpose).allowed

    def check_many(self, customer_ids: Iterable[str], purpose: str) -> list[CheckResult]:
        """Check many customers for one purpose, in order; a failed chunk is all denied."""
        ids = list(customer_ids)
        results: list[CheckResult] = []
        for start in range(0, len(ids), MAX_BATCH):
            chunk = ids[start:start + MAX_BATCH]
            results.extend(self._check_chunk(chunk, purpose))
        return results

    def _check_chunk(self, chunk: list[str], purpose: str) -> list[CheckResult]:
        try:
            body = self._call("POST", "/api/v1/consent-check",
                              body={"purpose": purpose, "customer_ids": chunk})
            answers = body["results"]
            if not isinstance(answers, list) or len(answers) != len(chunk):
                raise ValueError("result count differs")
            out = []
            for cid, item in zip(chunk, answers, strict=True):
                if item["customer_id"] != cid:
                    raise ValueError("results out of order")
                out.append(CheckResult.of_batch_item(cid, purpose, item))
            return out
        except HubError as exc:
            reason = _deny_reason(exc)
        except Exception as exc:  # a malformed answer, or a bug here: deny, never raise
            log.warning("batch consent check failed closed: %s", type(exc).__name__)
            reason = HUB_UNAVAILABLE
        return [CheckResult.denied(cid, purpose, reason) for cid in chunk]

    def audience(self, purpose: str, customer_ids: Iterable[str] | None = None, *,
                 page_size: int = 10_000) -> Iterator[str]:
        """Yield the ids the gate allows for ``purpose``: among ``customer_ids``, else all.

        Raises HubUnavailable (or HubError for a 4xx) instead of yielding unverified ids.
        """
        if customer_ids is not None:
            ids = list(customer_ids)
            for start in range(0, len(ids), MAX_BATCH):
                page = self._call("POST", "/api/v1/audiences", body={
                    "purpose": purpose, "customer_ids": ids[start:start + MAX_BATCH]})
                yield from _items(page)
            return
        cursor: str | None = None
        while True:
            request: dict[str, Any] = {"purpose": purpose, "limit": page_size}
            if cursor is not None:
                request["cursor"] = cursor
            page = self._call("POST", "/api/v1/audiences", body=request)
            yield from _items(page)
            cursor = page.get("next_cursor")
            if not cursor:
                return
            if not isinstance(cursor, str):
                raise HubUnavailable(200, message="malformed next_cursor from the hub")

    # -- consent, data, customers -------------------------------------------------------

    def record_consent(self, customer_id: str, purpose: str, granted: bool, *,
                       source: str | None = None, collection_method: str = "api",
                       notice_version: str | None = None, language: str = "en",
                       evidence: Mapping[str, Any] | None = None,
                       consent_type: str = "regular",
                       idempotency_key: str | None = None) -> dict[str, Any]:
        """Record one decision; returns the recorded event (with ``status``, ``receipt_id``).

        Sent with an ``Idempotency-Key`` (a fresh one unless given), so a retry is safe; a
        409 ``concurrent-change`` is retried once with the same key.
        """
        decision: dict[str, Any] = {"purpose": purpose, "granted": granted,
                                    "collection_method": collection_method,
                                    "language": language, "consent_type": consent_type}
        if source is not None:
            decision["source"] = source
        if notice_version is not None:
            decision["notice_version"] = notice_version
        if evidence is not None:
            decision["evidence"] = dict(evidence)
        return self._call("POST", f"/api/v1/customers/{_seg(customer_id)}/consents",
                          body=decision, idempotency_key=idempotency_key, write=True)

    def read_data(self, customer_id: str, purpose: str) -> dict[str, Any]:
        """Purpose-bound data: only the purpose's fields. Raises Denied when the gate says no."""
        try:
            return self._call("GET", f"/api/v1/customers/{_seg(customer_id)}/data",
                              query={"purpose": purpose})
        except HubError as exc:
            reason = exc.problem.get("reason")
            if exc.status == 403 and isinstance(reason, str) and not isinstance(exc, Denied):
                raise Denied(reason, exc.problem) from None
            raise

    def unsubscribe_link(self, customer_id: str, purpose: str) -> dict[str, Any]:
        """A one-click unsubscribe link (and List-Unsubscribe headers) for one message."""
        return self._call("POST", f"/api/v1/customers/{_seg(customer_id)}/unsubscribe-link",
                          body={"purpose": purpose}, write=True)

    def report_request(self, request_id: str, system: str, status: str,
                       data: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Report this system's part of a data subject request: "done" or "failed"."""
        body: dict[str, Any] = {"status": status}
        if data is not None:
            body["data"] = dict(data)
        return self._call("POST", f"/api/v1/requests/{_seg(request_id)}/systems/{_seg(system)}",
                          body=body, write=True)

    def upsert_customer(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Create a customer, or update the one with this ``external_id`` or else email."""
        return self._call("POST", "/api/v1/customers", body=dict(fields), write=True)

    def lookup(self, email: str | None = None, phone: str | None = None,
               external_id: str | None = None) -> list[str]:
        """Ids of the customers with exactly this identifier (give exactly one)."""
        given = {k: v for k, v in
                 (("email", email), ("phone", phone), ("external_id", external_id))
                 if v is not None}
        if len(given) != 1:
            raise ValueError("give exactly one of email, phone, external_id")
        body = self._call("POST", "/api/v1/customers/lookup", body=given)
        return [str(item["id"]) for item in body["items"]]

    @staticmethod
    def verify_webhook(body: bytes, header: str, secret: str, *, tolerance: int = 300) -> bool:
        """True when ``Privacy-Hub-Signature`` ``header`` signs exactly ``body``, recently."""
        return webhooks.verify(secret, body, header, tolerance=tolerance)

    # -- transport ------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        local = self._local
        if local.conn is None or local.pid != os.getpid():  # never share a socket after fork
            conn: http.client.HTTPConnection
            if self._https:
                conn = http.client.HTTPSConnection(self._host, self._port,
                                                   timeout=self.timeout, context=self._ssl)
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
            local.conn, local.pid = conn, os.getpid()
            with self._lock:
                self._open.add(conn)
        return local.conn

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        self._local.conn = None
        with self._lock:
            self._open.discard(conn)

    def _call(self, method: str, path: str, *, query: Mapping[str, str] | None = None,
              body: Any = None, idempotency_key: str | None = None,
              write: bool = False) -> dict[str, Any]:
        """One request; the decoded JSON object of a 2xx answer, else HubError.

        A ``write`` is sent with an ``Idempotency-Key`` (a fresh one unless given) and, when
        the hub answers 409 ``concurrent-change`` (nothing was saved), sent once more with
        the same key.
        """
        url = self._prefix + path + (f"?{urlencode(query)}" if query else "")
        headers = {"Authorization": self._auth, "Accept": "application/json",
                   "User-Agent": _USER_AGENT}
        payload = None
        if body is not None:
            payload = json.dumps(body, separators=(",", ":")).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if write and idempotency_key is None:
            idempotency_key = str(uuid.uuid4())
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        status, decoded = self._send(method, url, payload, headers)
        if write and _concurrent_change(status, decoded):
            status, decoded = self._send(method, url, payload, headers)
        if 200 <= status < 300:
            if not isinstance(decoded, dict):
                raise HubUnavailable(status, message="malformed answer from the hub")
            return decoded
        problem = decoded if isinstance(decoded, dict) else {}
        if status >= 500:
            raise HubUnavailable(status, problem)
        raise HubError(status, problem)

    def _send(self, method: str, url: str, payload: bytes | None,
              headers: Mapping[str, str]) -> tuple[int, Any]:
        """Send one request (again on a new connection if a kept-alive one had gone
        stale); the status and the decoded JSON answer (None if it is not JSON)."""
        for attempt in (1, 2):
            conn = self._connection()
            reused = conn.sock is not None
            try:
                conn.request(method, url, body=payload, headers=dict(headers))
                response = conn.getresponse()
                status, raw = response.status, response.read()
                if response.will_close:
                    self._drop(conn)
                break
            except _STALE_CONNECTION as exc:
                self._drop(conn)
                if reused and attempt == 1:
                    continue
                raise HubUnavailable(None, message=f"connection failed: {type(exc).__name__}") \
                    from exc
            except (OSError, http.client.HTTPException) as exc:  # refused, timeout, bad answer
                self._drop(conn)
                raise HubUnavailable(None, message=f"connection failed: {type(exc).__name__}") \
                    from exc
        try:
            return status, (json.loads(raw) if raw else {})
        except ValueError:
            return status, None


def _concurrent_change(status: int, answer: Any) -> bool:
    """The hub's 409 for a write that met a concurrent one: nothing was saved, retry."""
    return (status == 409 and isinstance(answer, dict)
            and str(answer.get("type", "")).endswith("/concurrent-change"))


def _deny_reason(exc: HubError) -> str:
    """The reason a failed check is denied with, logged without any identifier."""
    if exc.status == 404 and str(exc.problem.get("type", "")).endswith("/unknown-purpose"):
        log.warning("consent check denied: the hub knows no such purpose")
        return UNKNOWN_PURPOSE
    log.warning("consent check failed closed: %s",
                f"hub answered {exc.status}" if exc.status else str(exc))
    return HUB_UNAVAILABLE


def _items(page: Mapping[str, Any]) -> list[str]:
    items = page.get("items")
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise HubUnavailable(200, message="malformed audience page from the hub")
    return items


def _seg(value: str) -> str:
    """One URL path segment: an id can never escape into another path."""
    return quote(value, safe="")
