"""One-click unsubscribe links for marketing messages (ePrivacy Art. 13(2), R-EPRIV-04).

A service asks the hub for a customer's link and puts it in every message (and in a
``List-Unsubscribe`` header, RFC 8058). Following it withdraws the consent at once: no
login, no fee, one step. The link carries a signed token naming customer and purpose.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class InvalidLink(Exception):
    """The token was not made by this hub (or was altered)."""


def _key(app_secret: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"privacy-hub/unsubscribe-links/v1").derive(app_secret)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def make_token(app_secret: bytes, customer_id: str, purpose: str) -> str:
    payload = f"{customer_id}|{purpose}".encode()
    mac = hmac.new(_key(app_secret), payload, hashlib.sha256).digest()[:18]
    return f"{_b64(payload)}.{_b64(mac)}"


def read_token(app_secret: bytes, token: str) -> tuple[str, str]:
    """(customer_id, purpose) from a token this hub made; InvalidLink otherwise."""
    try:
        payload_b64, mac_b64 = token.split(".")
        payload = base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4))
        mac = base64.urlsafe_b64decode(mac_b64 + "=" * (-len(mac_b64) % 4))
        customer_id, purpose = payload.decode().split("|")
    except (ValueError, UnicodeDecodeError):
        raise InvalidLink("malformed unsubscribe token") from None
    expected = hmac.new(_key(app_secret), payload, hashlib.sha256).digest()[:18]
    if not hmac.compare_digest(mac, expected):
        raise InvalidLink("unsubscribe token does not verify")
    return customer_id, purpose
