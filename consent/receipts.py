"""Consent receipts: Kantara Consent Receipt v1.1 / ISO/IEC TS 27560 fields, signed as a
compact JWS with Ed25519 ("alg": "EdDSA"), verifiable offline with the published JWKS.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit.clock import rfc3339
from consent.purposes import Purpose

KANTARA_VERSION = "KI-CR-v1.1.0"
ISO_SCHEMA = "ISO/IEC TS 27560:2023"


@dataclass(frozen=True)
class Controller:
    """The data controller named on receipts (the shop)."""

    name: str
    contact: str
    email: str
    address: str
    policy_url: str
    jurisdiction: str = "EU"
    service: str = "Online shop"


@dataclass(frozen=True)
class ReceiptSigner:
    """The hub's Ed25519 receipt key and the id (``kid``) it is published under."""

    key_id: str
    private_key: Ed25519PrivateKey


class ReceiptInvalid(Exception):
    """The receipt's signature does not verify, or the JWS is malformed."""


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515)."""
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64url_decode(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def canonical(obj: Mapping[str, Any]) -> bytes:
    """The JSON that is signed: sorted keys, no whitespace, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class ReceiptFacts:
    """The facts of one recorded decision that a receipt states."""

    receipt_id: str
    event_id: str
    customer_id: str
    event_type: str
    status: str
    consent_type: str
    collection_method: str
    source: str
    recorded_at: datetime
    expires_at: datetime | None
    notice_version: str | None
    notice_language: str | None
    notice_sha256: str | None
    #: SHA-256 of the decision's evidence (consent/proof.py): it names what was recorded
    #: after the evidence itself is purged
    evidence_sha256: str | None = None


def build(facts: ReceiptFacts, purpose: Purpose, controller: Controller) -> dict[str, Any]:
    """The receipt document (Kantara v1.1 top level, ISO 27560 record details nested)."""
    third_party = [r for r in purpose.recipients if r]
    termination = "Withdraw at any time in the privacy portal or through the shop."
    if purpose.consent_lifetime_days:
        termination += f" Ends {purpose.consent_lifetime_days} days after it is given."
    return {
        "version": KANTARA_VERSION,
        "jurisdiction": controller.jurisdiction,
        "consentTimestamp": int(facts.recorded_at.timestamp()),
        "collectionMethod": facts.collection_method,
        "consentReceiptID": facts.receipt_id,
        "language": facts.notice_language or "en",
        "piiPrincipalId": facts.customer_id,
        "piiControllers": [{
            "piiController": controller.name, "onBehalf": False, "contact": controller.contact,
            "address": controller.address, "email": controller.email,
            "piiControllerUrl": controller.policy_url,
        }],
        "policyUrl": controller.policy_url,
        "services": [{
            "service": controller.service,
            "purposes": [{
                "purpose": purpose.title,
                "purposeCategory": [purpose.dpv or purpose.key],
                "consentType": facts.consent_type,
                "piiCategory": list(purpose.data_categories),
                "primaryPurpose": False,
                "termination": termination,
                "thirdPartyDisclosure": bool(third_party) or purpose.sale_or_sharing,
                "thirdPartyName": ", ".join(third_party),
            }],
        }],
        "sensitive": purpose.special_category,
        "spiCat": list(purpose.data_categories) if purpose.special_category else [],
        "iso27560": {
            "schema_version": ISO_SCHEMA,
            "record_id": facts.event_id,
            "pii_principal_id": facts.customer_id,
            "purpose_id": purpose.key,
            "purpose_version": purpose.version,
            "lawful_basis": str(purpose.legal_basis),
            "event_type": facts.event_type,
            "event_state": facts.status,
            "event_time": rfc3339(facts.recorded_at),
            "validity_until": rfc3339(facts.expires_at),
            "privacy_notice": {"version": facts.notice_version,
                               "language": facts.notice_language,
                               "sha256": facts.notice_sha256},
            "evidence_sha256": facts.evidence_sha256,
            "retention_period": f"P{purpose.retention_days}D",
            "recipient_third_parties": third_party,
            "withdrawal_method": termination,
            "collection_method": facts.collection_method,
            "source": facts.source,
            "jurisdiction": controller.jurisdiction,
        },
    }


def sign(receipt: Mapping[str, Any], signer: ReceiptSigner) -> tuple[str, str]:
    """Return (payload JSON, compact JWS over exactly that JSON)."""
    payload = canonical(receipt)
    header = canonical({"alg": "EdDSA", "kid": signer.key_id, "typ": "JWT"})
    signing_input = f"{b64url(header)}.{b64url(payload)}"
    signature = signer.private_key.sign(signing_input.encode("ascii"))
    return payload.decode(), f"{signing_input}.{b64url(signature)}"


def jwk(key_id: str, public_key: Ed25519PublicKey) -> dict[str, str]:
    """The public key as a JWK, for the published JWKS."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw), "kid": key_id, "use": "sig",
            "alg": "EdDSA"}


def verify(jws: str, jwks: Mapping[str, Any]) -> dict[str, Any]:
    """Verify a compact JWS against a JWKS; return the receipt or raise ReceiptInvalid."""
    try:
        header_b64, payload_b64, signature_b64 = jws.split(".")
        header = json.loads(b64url_decode(header_b64))
        signature = b64url_decode(signature_b64)
    except ValueError:
        raise ReceiptInvalid("not a compact JWS") from None
    if header.get("alg") != "EdDSA":
        raise ReceiptInvalid("unexpected algorithm")
    keys = [k for k in jwks.get("keys", []) if k.get("kid") == header.get("kid")]
    if not keys or keys[0].get("crv") != "Ed25519":
        raise ReceiptInvalid("unknown key id")
    public = Ed25519PublicKey.from_public_bytes(b64url_decode(keys[0]["x"]))
    try:
        public.verify(signature, f"{header_b64}.{payload_b64}".encode("ascii"))
    except InvalidSignature:
        raise ReceiptInvalid("signature does not verify") from None
    receipt: dict[str, Any] = json.loads(b64url_decode(payload_b64))
    return receipt
