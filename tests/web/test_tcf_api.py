"""IAB TCF TC strings per customer through the API (R-SIG-03).

The hub stores the TC string a CMP produced, verbatim, and never makes one. The strings
used here are built by the small encoder below, field by field, so every decoded value
checked is one the test chose.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from privacy_hub import tcf
from privacy_hub.hub import Hub
from privacy_hub.systems import SCOPES
from privacy_hub.vault.errors import KeyDestroyed
from privacy_hub.vault.models import CustomerTcString
from tests.web.conftest import new_key

CREATED = datetime(2026, 11, 20, 9, 30, 12, 300000, tzinfo=UTC)
UPDATED = datetime(2026, 11, 21, 17, 5, 0, 900000, tzinfo=UTC)


# -- a TCF v2 encoder, for the test only (the hub never encodes) ---------------------------


def _bits(*fields: tuple[int, int]) -> str:
    """(value, width) pairs as a string of bits, most significant first."""
    out = ""
    for value, width in fields:
        assert 0 <= value < 1 << width, (value, width)
        out += format(value, f"0{width}b")
    return out


def _base64url(bits: str) -> str:
    """Bits padded to whole bytes, base64url without padding, as CMPs encode them."""
    bits += "0" * (-len(bits) % 8)
    raw = int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _deciseconds(when: datetime) -> int:
    return round((when - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(milliseconds=100))


def core_segment(*, version: int = 2, created: datetime = CREATED,
                 last_updated: datetime = UPDATED, cmp_id: int = 300, cmp_version: int = 7,
                 consent_screen: int = 2, language: str = "DE", vendor_list_version: int = 142,
                 policy_version: int = 5, consented_vendors: tuple[int, ...] = (2, 5, 9),
                 truncate_bits: int = 0) -> str:
    """A complete core segment: header, purposes, vendor consents as a bit field, vendor
    legitimate interests as ranges, and one publisher restriction."""
    letters = [ord(c) - ord("A") for c in language]
    max_vendor = max(consented_vendors)
    bits = _bits(
        (version, 6), (_deciseconds(created), 36), (_deciseconds(last_updated), 36),
        (cmp_id, 12), (cmp_version, 12), (consent_screen, 6), (letters[0], 6),
        (letters[1], 6), (vendor_list_version, 12), (policy_version, 6),
        (0, 1), (0, 1), (0b1, 12),  # IsServiceSpecific, UseNonStandardTexts, special features
        (0b1011 << 20, 24), (0b0100 << 20, 24),  # PurposesConsent, PurposesLITransparency
        (0, 1), (3 * 64 + 4, 12),  # PurposeOneTreatment, PublisherCC "DE"
        # vendor consents: a bit field
        (max_vendor, 16), (0, 1),
        *((int(v in consented_vendors), 1) for v in range(1, max_vendor + 1)),
        # vendor legitimate interests: one range 3-7
        (7, 16), (1, 1), (1, 12), (1, 1), (3, 16), (7, 16),
        # one publisher restriction: purpose 2, require consent, for vendor 9
        (1, 12), (2, 6), (1, 2), (1, 12), (0, 1), (9, 16),
    )
    return _base64url(bits[:len(bits) - truncate_bits])


def disclosed_vendors_segment(vendors: tuple[int, ...] = (2, 5, 9)) -> str:
    return _base64url(_bits((1, 3), (max(vendors), 16), (0, 1),
                            *((int(v in vendors), 1) for v in range(1, max(vendors) + 1))))


def tc_string(**fields: Any) -> str:
    return core_segment(**fields) + "." + disclosed_vendors_segment()


# -- helpers --------------------------------------------------------------------------------


def _post(client: FlaskClient, auth: dict[str, str], cid: str, body: Any,
          **headers: str) -> Any:
    return client.post(f"/api/v1/customers/{cid}/tcf", json=body, headers={**auth, **headers})


def _stored(hub: Hub) -> list[CustomerTcString]:
    with hub.sessions() as s:
        return list(s.scalars(select(CustomerTcString)).all())


def _export(client: FlaskClient, auth: dict[str, str], cid: str, kind: str) -> dict[str, str]:
    rid = client.post("/api/v1/requests", json={
        "type": kind, "customer_id": cid, "identity_verified": True,
        "verification_method": "signed_in"}, headers=auth).json["id"]
    resp = client.get(f"/api/v1/requests/{rid}/export", headers=auth)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    with zipfile.ZipFile(io.BytesIO(resp.data)) as zf:
        return {name: zf.read(name).decode() for name in zf.namelist()}


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- the decoder alone ------------------------------------------------------------------------


def test_the_decoder_reads_back_every_header_field_the_encoder_wrote() -> None:
    """R-SIG-03: CMP id/version, created/lastUpdated, vendor-list and policy version."""
    header = tcf.decode(tc_string(cmp_id=4095, cmp_version=1, language="ZA",
                                  vendor_list_version=4095, policy_version=63))
    assert header == tcf.TcHeader(
        version=2, created=CREATED, last_updated=UPDATED, cmp_id=4095, cmp_version=1,
        consent_screen=2, consent_language="ZA", vendor_list_version=4095,
        tcf_policy_version=63)


def test_the_decoder_refuses_a_core_segment_cut_short() -> None:
    whole = core_segment()
    assert tcf.decode(whole).cmp_id == 300
    with pytest.raises(tcf.InvalidTcString, match="ends before"):
        tcf.decode(core_segment(truncate_bits=30))


# -- the API ----------------------------------------------------------------------------------


def test_a_stored_tc_string_comes_back_byte_identical(
        client: FlaskClient, auth: dict[str, str], customer_id: str) -> None:
    """R-SIG-03: `POST /tcf` stores the string; `GET` returns the byte-identical value."""
    sent = tc_string()
    made = _post(client, auth, customer_id, {"tc_string": sent,
                                             "collected_at": "2026-11-21T17:05:01Z"})
    assert made.status_code == 201, made.get_data(as_text=True)
    assert made.json["tc_string"] == sent
    assert made.json["customer_id"] == customer_id
    assert made.json["collected_at"] == "2026-11-21T17:05:01Z"
    assert made.json["recorded_by"] == "test-admin"
    got = client.get(f"/api/v1/customers/{customer_id}/tcf", headers=auth)
    assert got.status_code == 200
    assert got.json == made.json
    # The very bytes, as they travel: base64url needs no JSON escaping.
    assert b'"tc_string":"' + sent.encode() + b'"' in got.data.replace(b": ", b":")
    history = client.get(f"/api/v1/customers/{customer_id}/tcf/history", headers=auth)
    assert [i["tc_string"] for i in history.json["items"]] == [sent]


def test_the_header_metadata_is_decoded_from_the_core_segment(
        client: FlaskClient, auth: dict[str, str], customer_id: str) -> None:
    """R-SIG-03: stored with CMP id/version, created/lastUpdated, vendor-list and policy
    version, each as the CMP wrote it."""
    sent = tc_string(cmp_id=1234, cmp_version=56, language="FR", vendor_list_version=321,
                     policy_version=4)
    body = _post(client, auth, customer_id, {"tc_string": sent}).json
    assert {k: body[k] for k in ("tcf_version", "cmp_id", "cmp_version", "consent_language",
                                 "vendor_list_version", "tcf_policy_version")} == {
        "tcf_version": 2, "cmp_id": 1234, "cmp_version": 56, "consent_language": "FR",
        "vendor_list_version": 321, "tcf_policy_version": 4}
    assert _time(body["tc_created_at"]) == CREATED
    assert _time(body["tc_updated_at"]) == UPDATED
    assert body["collected_at"] is None
    assert set(body) >= {"id", "customer_id", "tc_string", "recorded_at", "cmp_id",
                         "cmp_version", "consent_language", "vendor_list_version",
                         "tcf_policy_version", "tc_created_at", "tc_updated_at"}


_TOO_LONG = core_segment() + "." + "I" * tcf.MAX_LENGTH


@pytest.mark.parametrize(("sent", "why"), [
    ("", "empty"),
    (core_segment()[:20] + "+/" + core_segment()[22:], "base64url"),
    (core_segment() + "==", "base64url"),
    (core_segment() + " ", "base64url"),
    (core_segment() + "..IAAA", "empty segment"),
    (core_segment(version=1), "version 1"),
    (core_segment(version=3), "version 3"),
    (_TOO_LONG, "longer than 8192"),
    (core_segment(truncate_bits=40), "ends before"),
    (core_segment() + "." + _base64url(_bits((5, 3), (0, 21))), "segment type 5"),
    (core_segment(language="D["), "language"),
], ids=["empty", "plus-slash", "padding", "space", "empty-segment", "version-1", "version-3",
        "too-long", "truncated", "segment-type", "language"])
def test_a_bad_tc_string_is_422_naming_the_field_without_echoing_it(
        client: FlaskClient, auth: dict[str, str], customer_id: str, hub: Hub,
        sent: str, why: str) -> None:
    """API.md Conventions: invalid fields are 422 with `errors`; the string (possibly
    personal data, CJEU C-604/22) is never repeated back."""
    resp = _post(client, auth, customer_id, {"tc_string": sent})
    assert resp.status_code == 422, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    assert list(resp.json["errors"]) == ["tc_string"]
    assert why in " ".join(resp.json["errors"]["tc_string"])
    if sent:
        text = resp.get_data(as_text=True)
        assert sent[:12] not in text and sent[-12:] not in text
    assert _stored(hub) == []


def test_a_tc_string_that_is_not_a_string_is_422(
        client: FlaskClient, auth: dict[str, str], customer_id: str) -> None:
    for sent in (None, 42, ["CAAA"], {"core": "CAAA"}):
        resp = _post(client, auth, customer_id, {"tc_string": sent})
        assert resp.status_code == 422, sent
        assert "tc_string" in resp.json["errors"]
    resp = _post(client, auth, customer_id, {})
    assert resp.status_code == 422 and "tc_string" in resp.json["errors"]


def test_unknown_fields_and_bad_times_are_422(
        client: FlaskClient, auth: dict[str, str], customer_id: str, hub: Hub) -> None:
    sent = tc_string()
    for body, field in [
        ({"tc_string": sent, "vendor": 1}, "vendor"),
        ({"tc_string": sent, "collected_at": "yesterday"}, "collected_at"),
        ({"tc_string": sent, "collected_at": "2026-11-21T17:05:01"}, "collected_at"),  # naive
        ({"tc_string": sent, "collected_at": "0001-01-01T00:00:00+01:00"}, "collected_at"),
        ({"tc_string": sent, "collected_at": (datetime.now(UTC) + timedelta(days=1))
          .isoformat()}, "collected_at"),
    ]:
        resp = _post(client, auth, customer_id, body)
        assert resp.status_code == 422, body
        assert field in resp.json["errors"], resp.json
        assert sent not in resp.get_data(as_text=True)
    assert _stored(hub) == []


def test_an_unknown_customer_is_404(client: FlaskClient, auth: dict[str, str]) -> None:
    for cid in (str(uuid.uuid4()), "not-a-uuid"):
        assert _post(client, auth, cid, {"tc_string": tc_string()}).status_code == 404
        for path in ("tcf", "tcf/history"):
            resp = client.get(f"/api/v1/customers/{cid}/{path}", headers=auth)
            assert resp.status_code == 404, path
            assert resp.mimetype == "application/problem+json"


def test_a_customer_without_a_tc_string_is_404_and_an_empty_history(
        client: FlaskClient, auth: dict[str, str], customer_id: str) -> None:
    resp = client.get(f"/api/v1/customers/{customer_id}/tcf", headers=auth)
    assert resp.status_code == 404 and resp.mimetype == "application/problem+json"
    history = client.get(f"/api/v1/customers/{customer_id}/tcf/history", headers=auth)
    assert history.status_code == 200 and history.json == {"items": [], "next_cursor": None}


def test_a_key_without_the_consent_scope_is_403(
        client: FlaskClient, auth: dict[str, str], customer_id: str, hub: Hub) -> None:
    reader = {"Authorization": "Bearer " + new_key(
        hub, "tcf-reader", [s for s in SCOPES if s != "consents:write"])}
    writer = {"Authorization": "Bearer " + new_key(
        hub, "tcf-writer", [s for s in SCOPES if s != "consents:read"])}
    resp = _post(client, reader, customer_id, {"tc_string": tc_string()})
    assert resp.status_code == 403 and "consents:write" in resp.json["detail"]
    assert _post(client, writer, customer_id, {"tc_string": tc_string()}).status_code == 201
    for path in ("tcf", "tcf/history"):
        resp = client.get(f"/api/v1/customers/{customer_id}/{path}", headers=writer)
        assert resp.status_code == 403 and "consents:read" in resp.json["detail"]
        assert client.get(f"/api/v1/customers/{customer_id}/{path}",
                          headers=reader).status_code == 200


def test_history_is_oldest_first_and_get_answers_the_newest(
        client: FlaskClient, auth: dict[str, str], customer_id: str) -> None:
    """R-SIG-03: each string the CMP produced is kept; a new one does not replace the old."""
    sent = [tc_string(cmp_version=v, last_updated=UPDATED + timedelta(days=v))
            for v in (1, 2, 3)]
    ids = [_post(client, auth, customer_id, {"tc_string": s}).json["id"] for s in sent]
    items = client.get(f"/api/v1/customers/{customer_id}/tcf/history", headers=auth).json["items"]
    assert [i["id"] for i in items] == ids
    assert [i["tc_string"] for i in items] == sent
    assert [i["cmp_version"] for i in items] == [1, 2, 3]
    assert [i["recorded_at"] for i in items] == sorted(i["recorded_at"] for i in items)
    newest = client.get(f"/api/v1/customers/{customer_id}/tcf", headers=auth).json
    assert newest["id"] == ids[-1] and newest["tc_string"] == sent[-1]


def test_a_retry_with_the_same_idempotency_key_stores_it_once(
        client: FlaskClient, auth: dict[str, str], customer_id: str, hub: Hub) -> None:
    body = {"tc_string": tc_string()}
    first = _post(client, auth, customer_id, body, **{"Idempotency-Key": "tcf-1"})
    again = _post(client, auth, customer_id, body, **{"Idempotency-Key": "tcf-1"})
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true" and again.json == first.json
    assert len(_stored(hub)) == 1


def test_the_sealed_column_does_not_hold_the_string_in_clear(
        client: FlaskClient, auth: dict[str, str], customer_id: str, hub: Hub) -> None:
    """R-SIG-03: treated as personal data, so sealed under the customer's own key."""
    sent = tc_string()
    _post(client, auth, customer_id, {"tc_string": sent})
    (row,) = _stored(hub)
    assert row.customer_id == customer_id
    raw = bytes(row.tc_string_ct)
    for needle in (sent, core_segment(), disclosed_vendors_segment()):
        assert needle.encode() not in raw
    assert base64.urlsafe_b64decode(core_segment() + "==")[:16] not in raw
    with hub.sessions() as s:
        key = hub.keyring.data_key(s, customer_id)
        assert key.open("customer_tc_strings", "tc_string_ct", row.id, raw) == sent.encode()


def test_the_access_export_holds_every_tc_string_with_its_metadata(
        client: FlaskClient, auth: dict[str, str], customer_id: str, catalogue: None) -> None:
    """R-SIG-03: the access export includes it (data.json, a CSV and the readable page)."""
    sent = [tc_string(cmp_id=11), tc_string(cmp_id=12, language="EN")]
    for s in sent:
        assert _post(client, auth, customer_id, {"tc_string": s}).status_code == 201
    for kind in ("access", "portability"):
        files = _export(client, auth, customer_id, kind)
        items = json.loads(files["data.json"])["tc_strings"]
        assert [i["tc_string"] for i in items] == sent, kind
        assert [(i["cmp_id"], i["consent_language"]) for i in items] == [(11, "DE"), (12, "EN")]
        assert _time(items[0]["tc_created_at"]) == CREATED
        assert {i["vendor_list_version"] for i in items} == {142}
        rows = list(csv.DictReader(io.StringIO(files["tc_strings.csv"])))
        assert [r["tc_string"] for r in rows] == sent
        assert all(s in files["index.html"] for s in sent)


def test_after_erasure_the_strings_are_unreadable_and_not_returned(
        client: FlaskClient, auth: dict[str, str], customer_id: str, hub: Hub) -> None:
    """R-SIG-03 with erasure by crypto-shredding: the customer's key is gone, so the sealed
    string cannot be opened from the database (or a backup of it) any more."""
    sent = tc_string()
    _post(client, auth, customer_id, {"tc_string": sent}, **{"Idempotency-Key": "before"})
    assert client.delete(f"/api/v1/customers/{customer_id}", headers=auth).status_code == 200
    (row,) = _stored(hub)
    assert sent.encode() not in bytes(row.tc_string_ct)
    with hub.sessions() as s, pytest.raises(KeyDestroyed):
        hub.keyring.data_key(s, customer_id)
    got = client.get(f"/api/v1/customers/{customer_id}/tcf", headers=auth)
    assert got.status_code == 404 and sent not in got.get_data(as_text=True)
    history = client.get(f"/api/v1/customers/{customer_id}/tcf/history", headers=auth)
    assert history.status_code == 200 and history.json == {"items": [], "next_cursor": None}
    gone = _post(client, auth, customer_id, {"tc_string": sent})
    assert gone.status_code == 409 and sent not in gone.get_data(as_text=True)
    # The replayable response of the write before is dropped with the customer.
    replay = _post(client, auth, customer_id, {"tc_string": sent}, **{"Idempotency-Key": "before"})
    assert replay.status_code == 409


def test_the_tc_string_is_never_in_audit_details_logs_or_errors(
        client: FlaskClient, auth: dict[str, str], customer_id: str, hub: Hub,
        caplog: pytest.LogCaptureFixture) -> None:
    """Every read and write is audited by id, CMP id and version only; nothing of the
    string reaches the audit log, the log output or an error."""
    caplog.set_level(logging.DEBUG)
    sent = tc_string()
    answers = [
        _post(client, auth, customer_id, {"tc_string": sent}),
        client.get(f"/api/v1/customers/{customer_id}/tcf", headers=auth),
        client.get(f"/api/v1/customers/{customer_id}/tcf/history", headers=auth),
        _post(client, auth, customer_id, {"tc_string": sent, "extra": sent}),
        _post(client, auth, customer_id, {"tc_string": sent + "=", "collected_at": "x"}),
        _post(client, auth, str(uuid.uuid4()), {"tc_string": sent}),
    ]
    assert [a.status_code for a in answers] == [201, 200, 200, 422, 422, 404]
    for answer in answers[3:]:
        assert sent not in answer.get_data(as_text=True)
    entries = client.get("/api/v1/audit", query_string={"customer_id": customer_id, "limit": 100},
                         headers=auth).json["items"]
    tcf_entries = [e for e in entries if "tc_string" in e["action"]]
    assert [e["action"] for e in tcf_entries] == [
        "customer.tc_string_recorded", "customer.tc_string_read",
        "customer.tc_string_history_read"]
    stored_id = answers[0].json["id"]
    assert tcf_entries[0]["details"] == {"tc_string_id": stored_id, "cmp_id": 300,
                                         "cmp_version": 7}
    assert tcf_entries[1]["details"] == tcf_entries[0]["details"]
    assert tcf_entries[2]["details"] == {"count": 1}
    everything = json.dumps(client.get("/api/v1/audit", query_string={"limit": 1000},
                                       headers=auth).json)
    for needle in (sent, core_segment(), disclosed_vendors_segment()):
        assert needle not in everything
        assert needle not in caplog.text
    assert client.get("/api/v1/audit/verify", headers=auth).json["ok"] is True
