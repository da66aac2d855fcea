"""The evidence pack for a supervisory authority (R-AUD-03; GDPR Art. 7(1), 31, 58(1)(a))."""

from __future__ import annotations

import io
import json
import re
import uuid
import zipfile
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import text

import audit
from consent import flags
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from tests.conftest import SEED_EMAIL, SEED_NAME, SEED_PHONE
from tests.web.conftest import new_key

PURPOSE = "marketing.sms"
NOTICE = "We send offers by SMS; withdraw at any time in the privacy portal."
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def pack(client: FlaskClient, auth: dict[str, str], cid: str, purpose: str = PURPOSE,
         **params: str) -> Any:
    return client.get(f"/api/v1/customers/{cid}/evidence",
                      query_string={"purpose": purpose, **params}, headers=auth)


def pack_with_checks(client: FlaskClient, auth: dict[str, str], cid: str,
                     at_least: int) -> dict[str, Any]:
    """The pack, which must hold the ``at_least`` checks made before it: the pack flushes
    the check log, and a flush waits for a batch the background writer is committing."""
    resp = pack(client, auth, cid)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert len(resp.json["checks"]) >= at_least, resp.json["checks"]
    return resp.json  # type: ignore[no-any-return]


def grant_then_withdraw(client: FlaskClient, auth: dict[str, str], cid: str) -> None:
    notice = client.post("/api/v1/notices", json={"version": "2026-10", "language": "en",
                                                  "text": NOTICE}, headers=auth)
    assert notice.status_code == 201, notice.get_data(as_text=True)
    for granted in (True, False):
        resp = client.post(f"/api/v1/customers/{cid}/consents", headers=auth, json={
            "purpose": PURPOSE, "granted": granted, "source": "checkout",
            "collection_method": "web_form", "notice_version": "2026-10", "language": "en",
            "evidence": {"ui_element": "checkout-sms-checkbox", "ui_version": "checkout-v7",
                         "user_agent": "Firefox/140"}})
        assert resp.status_code == 201, resp.get_data(as_text=True)


def check(client: FlaskClient, auth: dict[str, str], cid: str, times: int) -> None:
    for _ in range(times):
        resp = client.get("/api/v1/consent-check",
                          query_string={"customer_id": cid, "purpose": PURPOSE}, headers=auth)
        assert resp.status_code == 200


def test_the_pack_proves_a_grant_and_its_withdrawal(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str) -> None:
    """R-AUD-03: consent records, notice text, UI version, receipts and check history, with
    every stored hash matching; the gate's answer now."""
    grant_then_withdraw(client, auth, customer_id)
    check(client, auth, customer_id, 3)
    body = pack_with_checks(client, auth, customer_id, 3)

    assert body["customer_id"] == customer_id and body["purpose"] == PURPOSE
    assert body["customer_status"] == "active"
    assert RFC3339.match(body["generated_at"])
    assert body["controller"]["name"] and body["controller"]["contact"]
    (version,) = body["purpose_versions"]
    assert version["version"] == 1 and version["snapshot"]["key"] == PURPOSE

    events = body["consent_events"]
    assert [(e["event_type"], e["status"]) for e in events] == [("grant", "granted"),
                                                                ("withdraw", "withdrawn")]
    assert all(e["evidence"]["ui_version"] == "checkout-v7" for e in events)
    history = client.get(f"/api/v1/customers/{customer_id}/consents/history",
                         headers=auth).json["items"]
    checked = ("evidence_sha256_matches", "evidence_note")
    assert [{k: v for k, v in e.items() if k not in checked} for e in events] == [
        e for e in history if e["purpose"] == PURPOSE]
    assert all(e["evidence_sha256_matches"] is True and e["evidence_note"] is None
               for e in events)

    assert [r["receipt_id"] for r in body["receipts"]] == [e["receipt_id"] for e in events]
    for receipt in body["receipts"]:
        assert receipt["verified"] is True
        assert receipt == {**client.get(f"/api/v1/receipts/{receipt['receipt_id']}",
                                        headers=auth).json, "verified": True}
    assert body["receipt_keys"]["jwks"] == client.get("/api/v1/keys/receipts").json

    (notice,) = body["notices"]
    assert notice["version"] == "2026-10" and notice["language"] == "en"
    assert notice["text"] == NOTICE and notice["sha256_matches"] is True
    assert notice["recorded_sha256_matches"] is True
    assert all(e["notice_sha256"] == notice["sha256"] for e in events)

    assert len(body["checks"]) >= 3 and body["checks_capped"] is False
    assert all(c["reason"] == "withdrawn" and c["allowed"] is False and c["via"] == "check"
               for c in body["checks"])
    assert body["checks"] == sorted(body["checks"], key=lambda c: c["checked_at"], reverse=True)

    actions = [e["action"] for e in body["audit_entries"]]
    assert actions[:2] == ["consent.grant", "consent.withdraw"]
    assert all(e["hash_matches"] and e["linked"] for e in body["audit_entries"])
    assert body["audit_entries_verified"] is True
    assert body["audit_chain_verification"] == "GET /api/v1/audit/verify"

    assert body["current_decision"] == {
        "customer_id": customer_id, "purpose": PURPOSE, "allowed": False,
        "legal_basis": "consent", "reason": "withdrawn", "valid_until": None}
    assert body["processing_flags"] == []


def test_each_export_is_audited_by_ids_only(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str) -> None:
    """R-AUD-01: exports are audited; the entry names the customer id and purpose only."""
    assert pack(client, auth, customer_id).status_code == 200
    entries = client.get("/api/v1/audit", query_string={
        "action": "evidence.exported", "customer_id": customer_id}, headers=auth).json["items"]
    assert [e["details"] for e in entries] == [{"purpose": PURPOSE, "format": "json"}]
    # a later pack lists the earlier export among the entries naming the purpose
    later = pack(client, auth, customer_id).json
    assert "evidence.exported" in [e["action"] for e in later["audit_entries"]]


def test_a_notice_text_changed_in_the_database_no_longer_matches_its_hash(
        client: FlaskClient, auth: dict[str, str], hub: Hub, catalogue: None,
        customer_id: str) -> None:
    """R-AUD-03: the notice's hash is recomputed, not copied."""
    grant_then_withdraw(client, auth, customer_id)
    with hub.engine.begin() as conn:
        conn.execute(text("UPDATE notices SET text = :t WHERE version = '2026-10'"),
                     {"t": NOTICE + " We also sell your number."})
    (notice,) = pack(client, auth, customer_id).json["notices"]
    assert notice["sha256_matches"] is False
    assert notice["recorded_sha256_matches"] is True  # the stored hash itself is untouched


def test_an_audit_entry_changed_in_the_database_is_not_verified(
        client: FlaskClient, auth: dict[str, str], hub: Hub, catalogue: None,
        customer_id: str) -> None:
    """R-AUD-02, R-AUD-03: each listed entry's hash is recomputed from its stored fields."""
    grant_then_withdraw(client, auth, customer_id)
    before = pack(client, auth, customer_id).json
    grant = next(e for e in before["audit_entries"] if e["action"] == "consent.grant")
    forged = json.dumps({**grant["details"], "collection_method": "paper_form"},
                        sort_keys=True, separators=(",", ":"))
    with hub.engine.begin() as conn:
        conn.execute(text("UPDATE audit_entries SET details = :d WHERE seq = :s"),
                     {"d": forged, "s": grant["seq"]})
    after = pack(client, auth, customer_id).json
    verdicts = {e["seq"]: e["hash_matches"] for e in after["audit_entries"]}
    assert verdicts.pop(grant["seq"]) is False
    assert all(verdicts.values())
    assert after["audit_entries_verified"] is False


def test_an_audit_entry_rehashed_after_a_change_breaks_its_link(
        client: FlaskClient, auth: dict[str, str], hub: Hub, catalogue: None,
        customer_id: str) -> None:
    """An entry changed and given a fresh hash no longer matches its successor's prev_hash."""
    grant_then_withdraw(client, auth, customer_id)
    entries = pack(client, auth, customer_id).json["audit_entries"]
    grant = next(e for e in entries if e["action"] == "consent.grant")
    with hub.read_sessions() as session:
        stored = session.get(audit.AuditEntry, grant["seq"])
        assert stored is not None
        recorded_at = stored.recorded_at
    forged = json.dumps({**grant["details"], "collection_method": "paper_form"},
                        sort_keys=True, separators=(",", ":"))
    rehashed = audit.entry_hash(grant["prev_hash"], grant["seq"], recorded_at,
                                grant["actor"]["type"], grant["actor"]["id"], grant["action"],
                                customer_id, forged)
    with hub.engine.begin() as conn:
        conn.execute(text("UPDATE audit_entries SET details = :d, hash = :h WHERE seq = :s"),
                     {"d": forged, "h": rehashed, "s": grant["seq"]})
    after = {e["seq"]: e for e in pack(client, auth, customer_id).json["audit_entries"]}
    assert after[grant["seq"]]["hash_matches"] is True
    assert after[grant["seq"]]["linked"] is False


def test_a_receipt_changed_in_the_database_is_not_verified(
        client: FlaskClient, auth: dict[str, str], hub: Hub, catalogue: None,
        customer_id: str) -> None:
    """R-AUD-03: the receipt shown is the one its JWS signs, checked with the hub's keys."""
    grant_then_withdraw(client, auth, customer_id)
    first = pack(client, auth, customer_id).json["receipts"][0]
    changed = {**first["receipt"], "collectionMethod": "paper_form"}
    with hub.engine.begin() as conn:
        conn.execute(text("UPDATE consent_receipts SET payload = :p WHERE id = :i"),
                     {"p": json.dumps(changed), "i": first["receipt_id"]})
    receipts = pack(client, auth, customer_id).json["receipts"]
    assert [r["verified"] for r in receipts] == [False, True]


def test_objections_and_restrictions_that_limit_the_purpose_are_in_the_pack(
        client: FlaskClient, auth: dict[str, str], hub: Hub, catalogue: None,
        customer_id: str) -> None:
    """An objection to all direct marketing and a restriction concern marketing.sms; an
    objection to another purpose does not."""
    actor = audit.Actor("staff", "dpo-1")
    with transaction(hub.sessions) as session:
        flags.object_to(session, customer_id, ["fraud_prevention"], actor=actor)
        flags.object_to(session, customer_id, None, actor=actor)
        flags.restrict(session, customer_id, ground="accuracy_contested", actor=actor)
    body = pack(client, auth, customer_id).json
    assert [(f["kind"], f["purpose"], f["detail"]) for f in body["processing_flags"]] == [
        ("objected", "*", None), ("restricted", None, "accuracy_contested")]
    actions = [e["action"] for e in body["audit_entries"]]
    assert actions.count("processing.objected") == 1
    assert "processing.restricted" in actions
    assert body["current_decision"]["reason"] in ("objected", "restricted")
    assert body["customer_status"] in ("active", "restricted")


def test_an_erased_customer_still_has_a_pack(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str) -> None:
    """Proof of consent outlives erasure (Art. 17(3)(e), 7(1)); the pack holds no personal data."""
    grant_then_withdraw(client, auth, customer_id)
    assert client.delete(f"/api/v1/customers/{customer_id}", headers=auth).status_code == 200
    resp = pack(client, auth, customer_id)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.json
    assert body["customer_status"] == "erased"
    assert [e["status"] for e in body["consent_events"]] == ["granted", "withdrawn"]
    assert all(r["verified"] for r in body["receipts"])
    assert body["current_decision"]["reason"] == "erased"
    assert body["audit_entries_verified"] is True
    # DELETE erases as an erasure request does: the flag history records it
    assert [f["kind"] for f in body["processing_flags"]] == ["erased"], body["processing_flags"]
    # R-CREC-06: the evidence was crypto-shredded with the customer, and the pack says so
    erased_on = body["customer_erased_at"][:10]
    for event in body["consent_events"]:
        assert event["evidence"] is None and event["evidence_sha256"]
        assert event["evidence_note"].startswith(f"purged on {erased_on} (the customer was erased")
    assert (body["evidence_retention"]["kept"], body["evidence_retention"]["purged"]) == (0, 2)
    purged = [e for e in body["audit_entries"] if e["action"] == "consent.evidence_purged"]
    assert [(e["details"]["events"], e["details"]["reason"]) for e in purged] == [(2, "erasure")]


def test_the_pack_holds_no_personal_data(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str) -> None:
    """R-AUD-02: customer id only; the seeded email, name and phone appear nowhere."""
    grant_then_withdraw(client, auth, customer_id)
    check(client, auth, customer_id, 1)
    client.get(f"/api/v1/customers/{customer_id}", headers=auth)  # an audited read
    for params in ({}, {"format": "zip"}):
        raw = pack(client, auth, customer_id, **params).data
        texts = [raw.decode("utf-8", "replace")]
        if params:
            with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                texts += [archive.read(n).decode() for n in archive.namelist()]
        for seed in (SEED_EMAIL, "Ada", SEED_NAME, SEED_PHONE, SEED_PHONE[1:]):
            assert not any(seed in t for t in texts), seed


def test_the_zip_holds_the_json_notice_texts_and_receipts(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str) -> None:
    """?format=zip: the same pack as JSON, plus each notice text and receipt JWS as a file."""
    grant_then_withdraw(client, auth, customer_id)
    resp = pack(client, auth, customer_id, format="zip")
    assert resp.status_code == 200 and resp.mimetype == "application/zip"
    assert "attachment" in resp.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(resp.data)) as archive:
        names = set(archive.namelist())
        body = json.loads(archive.read("evidence.json"))
        assert archive.read("notices/001-2026-10-en.txt").decode() == NOTICE
        for receipt in body["receipts"]:
            assert archive.read(f"receipts/{receipt['receipt_id']}.jws").decode() == receipt["jws"]
        assert json.loads(archive.read("receipts/jwks.json")) == body["receipt_keys"]["jwks"]
    assert len(names) == 5  # evidence.json, one notice, two receipts, the keys
    assert [e["status"] for e in body["consent_events"]] == ["granted", "withdrawn"]


def test_unknown_customer_or_purpose_is_404(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str) -> None:
    for cid in (str(uuid.uuid4()), "not-a-uuid"):
        resp = pack(client, auth, cid)
        assert resp.status_code == 404 and resp.mimetype == "application/problem+json"
    resp = pack(client, auth, customer_id, purpose="marketing.carrier_pigeon")
    assert resp.status_code == 404 and resp.json["type"].endswith("unknown-purpose")


def test_without_a_purpose_or_with_an_unknown_format_is_422(
        client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str) -> None:
    resp = client.get(f"/api/v1/customers/{customer_id}/evidence", headers=auth)
    assert resp.status_code == 422 and "purpose" in resp.json["errors"]
    assert pack(client, auth, customer_id, format="pdf").status_code == 422


def test_a_key_without_audit_read_is_403(
        client: FlaskClient, hub: Hub, catalogue: None, customer_id: str) -> None:
    """R-AUD-02: only the DPO's and auditors' tools read the evidence."""
    key = new_key(hub, "crm", ["consents:read", "customers:read", "data:read"])
    resp = pack(client, {"Authorization": f"Bearer {key}"}, customer_id)
    assert resp.status_code == 403 and resp.json["required_scope"] == "audit:read"


def test_a_system_limited_to_other_purposes_is_403(
        client: FlaskClient, hub: Hub, catalogue: None, customer_id: str) -> None:
    key = new_key(hub, "newsletter-audit", ["audit:read"], purposes=["marketing.email"])
    headers = {"Authorization": f"Bearer {key}"}
    assert pack(client, headers, customer_id).status_code == 403
    assert pack(client, headers, customer_id, purpose="marketing.email").status_code == 200
