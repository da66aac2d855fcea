"""Use cases on the hub's own signing keys."""

from __future__ import annotations

from typing import Any

import audit
from audit.clock import utcnow
from consent import receipt_keys
from privacy_hub.db import transaction
from privacy_hub.hub import Hub, receipt_signer

RECEIPT_KEY = "receipt_signing"


def rotate_receipt_key(hub: Hub, *, actor: audit.Actor) -> dict[str, Any]:
    """Start a new Ed25519 receipt signing key and destroy the old private key.

    The old public key stays in the JWKS (``GET /api/v1/keys/receipts``), so every
    receipt it signed still verifies offline. This process signs with the new key at once;
    other running processes do when they restart, and what they sign until then verifies
    with the old key, which stays published.
    """
    with transaction(hub.sessions) as session:
        raw = hub.keyring.replace_hub_key(session, RECEIPT_KEY)
        signer = receipt_signer(raw)
        retired = receipt_keys.rotate(session, signer, utcnow())
        audit.record(session, actor=actor, action="key.rotated",
                     details={"key": RECEIPT_KEY, "key_id": signer.key_id, "retired": retired})
    hub.keyring.forget_hub_key(RECEIPT_KEY)
    hub.ledger.signer = signer
    return {"key_id": signer.key_id, "retired": retired}
