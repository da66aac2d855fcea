"""``Idempotency-Key`` on writes: a retry with the same key and body returns the first
response and changes nothing; the same key with another body is refused.

Stored responses may contain personal data, so they are sealed, expire after 24 hours,
and are dropped when their customer is erased.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import Response, g, make_response, request
from flask_smorest import Blueprint
from sqlalchemy import delete
from sqlalchemy.orm import Session

from audit.clock import utcnow
from privacy_hub.api.auth import current_principal
from privacy_hub.api.problems import Problem
from privacy_hub.models import IdempotencyRecord
from privacy_hub.vault import crypto
from privacy_hub.web.context import db, hub

F = TypeVar("F", bound=Callable[..., Any])
TTL = timedelta(hours=24)
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
HEADER = "Idempotency-Key"


def _aead() -> AESGCM:
    return AESGCM(hub().keyring.hub_key(db(), "app_secrets"))


def _aad(system_id: str, key: str) -> bytes:
    return b"idempotency|" + system_id.encode() + b"|" + key.encode()


def _request_hash() -> bytes:
    h = hashlib.sha256()
    for part in (request.method, request.path, request.query_string.decode("latin-1")):
        h.update(part.encode() + b"\0")
    h.update(request.get_data(cache=True))
    return h.digest()


def set_subject(customer_id: str) -> None:
    """Tie the stored response to a customer, so erasing them drops it."""
    g.idempotency_customer_id = customer_id


def idempotent(fn: F) -> F:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = request.headers.get(HEADER)
        if key is None:
            return fn(*args, **kwargs)
        if not _KEY_RE.match(key):
            raise Problem(422, "The Idempotency-Key header must be 1-255 visible ASCII characters.",
                          errors={HEADER: ["1-255 visible ASCII characters, e.g. a UUID"]})
        principal = current_principal()
        session = db()
        digest = _request_hash()
        record = session.get(IdempotencyRecord, (principal.system_id, key))
        if record is not None and record.created_at < utcnow() - TTL:
            session.delete(record)
            session.flush()
            record = None
        if record is not None:
            if not hmac.compare_digest(record.request_hash, digest):
                raise Problem(422, "This Idempotency-Key was already used with a different "
                              "request; use a new key for a new request.",
                              errors={HEADER: ["already used with a different request"]},
                              type_="idempotency-key-reused")
            body = crypto.unwrap(_aead(), record.response_ct, _aad(principal.system_id, key))
            resp = Response(body, status=record.status_code, mimetype="application/json")
            resp.headers["Idempotent-Replayed"] = "true"
            return resp
        resp = make_response(fn(*args, **kwargs))
        if 200 <= resp.status_code < 300:
            session.add(IdempotencyRecord(
                system_id=principal.system_id, key=key, request_hash=digest,
                status_code=resp.status_code,
                response_ct=crypto.wrap(_aead(), resp.get_data(), _aad(principal.system_id, key)),
                customer_id=g.get("idempotency_customer_id"), created_at=utcnow(),
            ))
        return resp

    documented: F = Blueprint.doc(parameters=["IdempotencyKey"],
                                  responses={"422": "IdempotencyKeyReused"})(wrapper)
    return documented


def forget_customer(session: Session, customer_id: str) -> None:
    """Erasure hook: drop stored responses about an erased customer."""
    session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.customer_id == customer_id))
