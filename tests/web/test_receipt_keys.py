"""Receipt signing keys rotate, and every receipt ever issued still verifies offline
(API.md "Consent", `privacy-hub keys rotate --receipts`; R-CREC-04)."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

import audit
from consent.models import ReceiptKey
from consent.receipts import ReceiptInvalid, verify
from privacy_hub.hub import Hub
from privacy_hub.usecases.keys import rotate_receipt_key
from privacy_hub.vault.keystore import HubKey

ACTOR = audit.Actor("cli", "tests")


def receipt_of_a_new_decision(client: FlaskClient, auth: dict[str, str], cid: str,
                              granted: bool) -> Any:
    made = client.post(f"/api/v1/customers/{cid}/consents", headers=auth,
                       json={"purpose": "analytics.behaviour", "granted": granted})
    assert made.status_code == 201, made.json
    return client.get(f"/api/v1/receipts/{made.json['receipt_id']}", headers=auth).json


def kid(jws: str) -> str:
    import json

    from consent.receipts import b64url_decode

    return str(json.loads(b64url_decode(jws.split(".")[0]))["kid"])


def test_receipts_signed_before_two_rotations_all_verify_with_the_published_jwks_alone(
        hub: Hub, client: FlaskClient, auth: dict[str, str], catalogue: None,
        customer_id: str) -> None:
    """R-CREC-04: sign, rotate, sign, rotate, sign; the public JWKS verifies all three."""
    receipts = [receipt_of_a_new_decision(client, auth, customer_id, granted=True)]
    rotate_receipt_key(hub, actor=ACTOR)
    receipts.append(receipt_of_a_new_decision(client, auth, customer_id, granted=False))
    rotate_receipt_key(hub, actor=ACTOR)
    receipts.append(receipt_of_a_new_decision(client, auth, customer_id, granted=True))

    assert len({kid(r["jws"]) for r in receipts}) == 3, "each receipt signed by its own key"
    jwks = client.get("/api/v1/keys/receipts").json  # public: no API key
    assert jwks["keys"][0]["kid"] == kid(receipts[-1]["jws"]), "the current key comes first"
    for receipt in receipts:
        assert verify(receipt["jws"], jwks) == receipt["receipt"]
    # and the JWKS is what makes them verify: without the first key, the first fails
    without_first = {"keys": [k for k in jwks["keys"] if k["kid"] != kid(receipts[0]["jws"])]}
    with pytest.raises(ReceiptInvalid):
        verify(receipts[0]["jws"], without_first)


def test_rotation_destroys_the_old_private_key_and_keeps_only_public_halves(
        hub: Hub, client: FlaskClient, catalogue: None) -> None:
    """The key store holds one receipt key (the new one); retired keys are public only."""
    with hub.sessions() as session:
        wrapped_before = session.get(HubKey, "receipt_signing").wrapped  # type: ignore[union-attr]
    old = hub.ledger.signer.key_id
    done = rotate_receipt_key(hub, actor=ACTOR)
    assert done["retired"] == [old] and done["key_id"] != old
    with hub.sessions() as session:
        assert session.get(HubKey, "receipt_signing").wrapped != wrapped_before  # type: ignore[union-attr]
        rows = {r.key_id: r for r in session.scalars(select(ReceiptKey))}
        assert set(rows) == {old, done["key_id"]}
        assert rows[old].retired_at is not None and rows[done["key_id"]].retired_at is None
        assert all(len(r.public_key) == 32 for r in rows.values())
        entry = session.scalars(select(audit.AuditEntry)
                                .where(audit.AuditEntry.action == "key.rotated")).one()
    assert done["key_id"] in entry.details and old in entry.details
