"""The console's audit log: browse and filter the entries, verify the chain with one button
(a tampered entry is named by its sequence number), export the signed checkpoints; an
admin may verify but not read (R-AUD-02, R-SEC-04)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flask.testing import FlaskClient
from sqlalchemy import update

import audit
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from tests.console import csrf, make_staff, signed_in_client
from tests.hubs import make_hub

CUSTOMER = "0b0c8a40-1d7e-4c39-9d0b-5b1e9a6f1c2d"


@pytest.fixture
def hub(tmp_path: Path, db_url: str) -> Iterator[Hub]:
    """A hub that signs a checkpoint every 5 entries, so a short test has some."""
    h = make_hub(tmp_path, db_url, audit_checkpoint_every=5)
    yield h
    h.close()


def write(hub: Hub, n: int, *, action: str = "test.happened", kind: str = "cli",
          customer_id: str | None = None) -> None:
    with transaction(hub.sessions) as session:
        for i in range(n):
            audit.record(session, actor=audit.Actor(kind, f"t{i}"), action=action,
                         customer_id=customer_id, details={"n": i})


def signed_in(hub: Hub, client: FlaskClient, role: str) -> FlaskClient:
    return signed_in_client(client, make_staff(hub, role))


def seqs(page: str) -> list[int]:
    return [int(s) for s in re.findall(r'<th scope="row" class="num">(\d+)</th>', page)]


def verify(staff: FlaskClient) -> str:
    resp = staff.post("/console/audit/verify",
                      data={"csrf_token": csrf(staff, "/console/audit/")})
    assert resp.status_code == 200
    return resp.get_data(as_text=True)


def test_entries_are_filtered_by_action_actor_kind_customer_and_seq(
        hub: Hub, client: FlaskClient) -> None:
    write(hub, 3, action="test.other")
    write(hub, 2, action="test.wanted", kind="job", customer_id=CUSTOMER)
    staff = signed_in(hub, client, "auditor")
    page = staff.get("/console/audit/?action=test.wanted").get_data(as_text=True)
    wanted = seqs(page)
    assert len(wanted) == 2 and "test.other" not in page
    assert seqs(staff.get("/console/audit/?actor=job").get_data(as_text=True)) == wanted
    assert seqs(staff.get(f"/console/audit/?customer_id={CUSTOMER.upper()}")
                .get_data(as_text=True)) == wanted
    after = staff.get(f"/console/audit/?action=test.wanted&since={wanted[0]}")
    assert seqs(after.get_data(as_text=True)) == wanted[1:]
    assert staff.get("/console/audit/?since=-4").status_code == 422


def test_entries_page_by_sequence_with_older_and_newer_links(
        hub: Hub, client: FlaskClient) -> None:
    write(hub, 60, action="test.paged")
    staff = signed_in(hub, client, "dpo")
    newest = staff.get("/console/audit/?action=test.paged").get_data(as_text=True)
    shown = seqs(newest)
    assert len(shown) == 50 and shown == sorted(shown)
    older = re.search(r'href="([^"]+)" rel="prev"', newest)
    assert older and 'rel="next"' not in newest
    first_page = staff.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert seqs(first_page) and max(seqs(first_page)) < shown[0]
    assert len(seqs(first_page)) == 10 and 'rel="prev"' not in first_page
    newer = re.search(r'href="([^"]+)" rel="next"', first_page)
    assert newer
    back = staff.get(newer.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert seqs(back) == shown


def test_verify_says_intact_with_the_count_and_the_last_checkpoint(
        hub: Hub, client: FlaskClient) -> None:
    """R-AUD-02: chain verification passes on an untouched log."""
    write(hub, 12)
    staff = signed_in(hub, client, "dpo")
    page = verify(staff)
    with hub.sessions() as session:
        report = audit.verify_chain(session, hub.audit_public_keys())
    assert report.ok
    assert "The chain is intact" in page
    assert f"Entries checked: {report.entries};" in page
    assert "Last checkpoint: entry" in page


def test_a_tampered_entry_is_named_by_its_sequence_number(
        hub: Hub, client: FlaskClient) -> None:
    """R-AUD-02 (grey-box): altering one stored entry makes verification name it."""
    write(hub, 12)
    staff = signed_in(hub, client, "auditor")
    target = seqs(staff.get("/console/audit/?action=test.happened").get_data(as_text=True))[4]
    table = audit.AuditEntry.__table__
    with hub.engine.begin() as conn:
        conn.execute(update(table).where(table.c.seq == target).values(details='{"n":99}'))
    page = verify(staff)
    assert "The chain is broken" in page
    assert f"First bad entry: sequence number {target}." in page


def test_the_checkpoint_export_holds_signed_checkpoints_and_the_key_id(
        hub: Hub, client: FlaskClient) -> None:
    write(hub, 12)
    staff = signed_in(hub, client, "auditor")
    resp = staff.get("/console/audit/checkpoints.json")
    assert resp.status_code == 200 and "attachment" in resp.headers["Content-Disposition"]
    exported = json.loads(resp.get_data(as_text=True))
    assert exported["key_id"] == hub.audit_signer.key_id and exported["algorithm"] == "Ed25519"
    assert len(exported["checkpoints"]) >= 2
    # Anyone holding the export can check each signature with the published key.
    raw = exported["public_key"] + "=" * (-len(exported["public_key"]) % 4)
    key = Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(raw))
    for checkpoint in exported["checkpoints"]:
        assert checkpoint["key_id"] == exported["key_id"]
        signature = checkpoint["signature"] + "=" * (-len(checkpoint["signature"]) % 4)
        key.verify(base64.urlsafe_b64decode(signature), checkpoint["note"].encode())


def test_an_admin_may_verify_but_reads_no_entry(hub: Hub, client: FlaskClient) -> None:
    """R-SEC-04, least privilege: the verify button, the checkpoints, and no entries."""
    write(hub, 3, action="test.secret")
    staff = signed_in(hub, client, "admin")
    page = staff.get("/console/audit/")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Verify the chain" in text and "test.secret" not in text and seqs(text) == []
    assert "The chain is intact" in verify(staff)
    assert staff.get("/console/audit/checkpoints.json").status_code == 200
    assert staff.get("/console/audit/?action=test.secret").status_code == 403
    assert staff.get("/console/audit/?before=10").status_code == 403


def test_an_agent_may_not_open_the_audit_log(hub: Hub, client: FlaskClient) -> None:
    staff = signed_in(hub, client, "agent")
    assert staff.get("/console/audit/").status_code == 403
    assert staff.get("/console/audit/checkpoints.json").status_code == 403
