"""The law's decisions about data subject requests through the API: deadlines on working
days (R-DEAD-01), requests for an address nobody has (R-DSAR-05), rejections on a ground
(R-DSAR-06, R-DSAR-07), no identity documents and no fees (R-DSAR-04, R-DSAR-06)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask.testing import FlaskClient
from sqlalchemy import select

from privacy_hub.app import create_app
from privacy_hub.hub import Hub
from privacy_hub.jobs.kinds import HANDLERS
from privacy_hub.jobs.outbox import OutboxJob, open_payload
from privacy_hub.jobs.retention import REQUEST_UNIDENTIFIED
from privacy_hub.systems import SCOPES
from tests.conftest import SEED_EMAIL
from tests.hubs import make_hub
from tests.web.conftest import new_key

UNKNOWN = "nobody.known+probe@example.net"


def jobs(hub: Hub, kind: str) -> list[tuple[OutboxJob, dict[str, Any]]]:
    """The outbox jobs of ``kind`` with their opened payloads, oldest first."""
    with hub.sessions() as session:
        aead = AESGCM(hub.keyring.hub_key(session, "app_secrets"))
        rows = session.scalars(select(OutboxJob).where(OutboxJob.kind == kind)
                               .order_by(OutboxJob.created_at)).all()
        return [(j, open_payload(aead, j.id, j.payload_ct)) for j in rows  # type: ignore[arg-type]
                if j.payload_ct is not None]


def mails(hub: Hub) -> list[dict[str, Any]]:
    return [payload for _, payload in jobs(hub, "mail")]


def submit(client: FlaskClient, auth: dict[str, str], **body: Any) -> Any:
    return client.post("/api/v1/requests", json=body, headers=auth)


def audit_entries(client: FlaskClient, auth: dict[str, str], action: str) -> list[dict[str, Any]]:
    return list(client.get("/api/v1/audit", query_string={"action": action, "limit": 1000},
                           headers=auth).json["items"])


def run_job(hub: Hub, handler_kind: str, payload: dict[str, Any]) -> None:
    """Run one job's handler as the worker would."""

    class _Context:
        pass

    context = _Context()
    context.hub = hub  # type: ignore[attr-defined]
    HANDLERS[handler_kind](context, None, payload)  # type: ignore[arg-type]


# -- R-DEAD-01: deadlines on working days -------------------------------------------------

@pytest.fixture
def german_hub(tmp_path: Path, db_url: str) -> Iterator[Hub]:
    h = make_hub(tmp_path, db_url, holidays="DE")
    yield h
    h.close()


def test_due_at_is_a_working_day_with_germanys_holidays_configured(german_hub: Hub) -> None:
    """R-DEAD-01: with PRIVACY_HUB_HOLIDAYS=DE, a request received 25 Nov 2026 is due
    Monday 28 Dec (25 Dec is Christmas, then Saturday, Sunday), at its time of receipt."""
    client = create_app(hub=german_hub).test_client()
    auth = {"Authorization": "Bearer " + new_key(german_hub, "desk", list(SCOPES))}
    customer = client.post("/api/v1/customers", json={"email": SEED_EMAIL},
                           headers=auth).json["id"]
    body = submit(client, auth, type="access", customer_id=customer, channel="letter",
                  received_at="2026-11-25T14:05:00Z").json
    assert body["due_at"] == "2026-12-28T14:05:00Z"
    # 30 Apr + 1 month: Sat 30 May -> Mon 1 Jun; 2 May: Tue 2 Jun stays; 3 Apr: Sun 3 May
    for received, due in (("2026-04-30T09:00:00Z", "2026-06-01T09:00:00Z"),
                          ("2026-05-02T09:00:00Z", "2026-06-02T09:00:00Z"),
                          ("2026-04-03T09:00:00Z", "2026-05-04T09:00:00Z")):
        got = submit(client, auth, type="access", customer_id=customer, channel="letter",
                     received_at=received).json
        assert got["due_at"] == due, received
    listed = client.get("/api/v1/requests?limit=100", headers=auth).json["items"]
    for item in listed:
        day = datetime.fromisoformat(item["due_at"]).date()
        assert day.weekday() < 5 and (day.month, day.day) not in {(12, 25), (12, 26), (1, 1),
                                                                  (5, 1)}


def test_an_extension_lands_on_a_working_day(german_hub: Hub) -> None:
    """R-DEAD-01, R-DEAD-02: received a few days ago, so that two months later is a
    Saturday: extended by one month, the request is due the Monday after."""
    from dsar.deadlines import add_months

    client = create_app(hub=german_hub).test_client()
    auth = {"Authorization": "Bearer " + new_key(german_hub, "desk", list(SCOPES))}
    customer = client.post("/api/v1/customers", json={"email": SEED_EMAIL},
                           headers=auth).json["id"]
    now = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    received = next(r for r in (now - timedelta(days=d) for d in range(2, 20))
                    if add_months(r, 2).weekday() == 5)
    body = submit(client, auth, type="access", customer_id=customer, channel="letter",
                  received_at=received.isoformat()).json
    extended = client.post(f"/api/v1/requests/{body['id']}/extend",
                           json={"months": 1, "reason": "three archives to search"},
                           headers=auth)
    assert extended.status_code == 200
    due = datetime.fromisoformat(extended.json["due_at"])
    saturday = add_months(received, 2)
    assert due.weekday() < 5 and saturday < due <= saturday + timedelta(days=4)
    assert due.time() == received.time()


def test_the_reminders_and_overdue_follow_the_moved_deadline(german_hub: Hub) -> None:
    """R-DEAD-01, R-DEAD-03: the DPO is reminded of the moved deadline; a request is
    overdue only after it."""
    client = create_app(hub=german_hub).test_client()
    auth = {"Authorization": "Bearer " + new_key(german_hub, "desk", list(SCOPES))}
    customer = client.post("/api/v1/customers", json={"email": SEED_EMAIL},
                           headers=auth).json["id"]
    body = submit(client, auth, type="access", customer_id=customer, channel="letter",
                  received_at="2026-11-25T14:05:00Z").json
    runs = sorted(j.next_attempt_at for j, p in jobs(german_hub, "request_reminder")
                  if p["request_id"] == body["id"])
    assert runs == [datetime(2026, 12, 21, 14, 5, tzinfo=UTC),
                    datetime(2026, 12, 28, 14, 5, tzinfo=UTC)]
    got = client.get(f"/api/v1/requests/{body['id']}", headers=auth).json
    assert got["overdue"] is (datetime.now(UTC) > datetime(2026, 12, 28, 14, 5, tzinfo=UTC))


# -- R-DSAR-05: an address nobody has --------------------------------------------------------

def test_a_request_for_an_unknown_email_looks_the_same_to_the_caller(
        client: FlaskClient, auth: dict[str, str], customer_id: str, hub: Hub) -> None:
    """R-DSAR-05, no enumeration: the same status code, the same body (keys, status,
    deadline), the same audit details; only the mailbox's owner learns the difference."""
    desk = {"Authorization": "Bearer " + new_key(hub, "service-desk", ["requests:write"])}
    known = submit(client, desk, type="access", email=SEED_EMAIL)
    unknown = submit(client, desk, type="access", email=UNKNOWN)
    assert known.status_code == unknown.status_code == 201
    assert known.headers["Content-Type"] == unknown.headers["Content-Type"]
    k, u = known.json, unknown.json
    assert set(k) == set(u) and {n: type(v) for n, v in k.items()} == {
        n: type(v) for n, v in u.items()}
    assert (k["status"], k["type"], k["extended"]) == (u["status"], u["type"], u["extended"])
    assert abs(datetime.fromisoformat(k["due_at"])
               - datetime.fromisoformat(u["due_at"])) < timedelta(minutes=1)
    received = {e["details"]["request_id"]: e for e in audit_entries(
        client, auth, "request.received")}
    assert set(received[k["id"]]["details"]) == set(received[u["id"]]["details"])
    assert received[k["id"]]["action"] == received[u["id"]]["action"]
    # The mails: a link for the customer; for the unknown address, that nobody is known.
    sent = mails(hub)
    (link,) = [m for m in sent if m["template"] == "request_verification"]
    assert link["customer_id"] == customer_id and link["secrets"]["token"]
    (note,) = [m for m in sent if m["template"] == "request_no_account"]
    assert note["to_staff"] == UNKNOWN and note["customer_id"] is None
    assert note["secrets"] == {} and note["data"]["request_id"] == u["id"]
    # Neither address shows up anywhere an API caller reads.
    everything = (client.get("/api/v1/requests?limit=100", headers=auth).get_data(as_text=True)
                  + client.get("/api/v1/audit?limit=1000", headers=auth).get_data(as_text=True))
    assert SEED_EMAIL not in everything and UNKNOWN not in everything


def test_a_request_nobody_is_identified_for_closes_after_30_days(
        client: FlaskClient, auth: dict[str, str], hub: Hub) -> None:
    """R-DSAR-05: without an answer the request is rejected (identity_not_found) by a
    scheduled job, audited as the job's act; one that moved on meanwhile is left alone."""
    before = datetime.now(UTC)
    waiting = submit(client, auth, type="erasure", email=UNKNOWN).json
    after = datetime.now(UTC)
    answered = submit(client, auth, type="access", email="other.unknown@example.net").json
    scheduled = {p["request_id"]: j for j, p in jobs(hub, REQUEST_UNIDENTIFIED)}
    assert set(scheduled) == {waiting["id"], answered["id"]}
    run_at = scheduled[waiting["id"]].next_attempt_at
    assert run_at is not None
    due = datetime.fromisoformat(waiting["due_at"])
    # 30 days, but never past the deadline (Art. 12(4): a refusal within it)
    assert min(before + timedelta(days=30), due) <= run_at <= min(after + timedelta(days=30), due)
    (note,) = [m for m in mails(hub) if m["template"] == "request_no_account"
               and m["data"]["request_id"] == waiting["id"]]
    assert note["data"]["closes_at"] == run_at.date().isoformat()
    # The DPO heard from the second requester and verified them another way.
    assert client.post(f"/api/v1/requests/{answered['id']}/verify",
                       json={"method": "known_address_reply"}, headers=auth).status_code == 200
    for request_id in (waiting["id"], answered["id"]):
        run_job(hub, REQUEST_UNIDENTIFIED, {"request_id": request_id})
    closed = client.get(f"/api/v1/requests/{waiting['id']}", headers=auth).json
    assert closed["status"] == "rejected"
    assert closed["rejection"]["ground"] == "identity_not_found"
    assert closed["rejection"]["reason"] == closed["rejection_reason"]
    assert "Art. 11(2)" in closed["rejection"]["reason"]
    assert closed["history"][-1]["actor"] == {"type": "job", "id": "requests"}
    assert client.get(f"/api/v1/requests/{answered['id']}",
                      headers=auth).json["status"] == "verified"
    (entry,) = [e for e in audit_entries(client, auth, "request.rejected")
                if e["details"]["request_id"] == waiting["id"]]
    assert entry["details"]["ground"] == "identity_not_found"
    assert entry["actor"]["type"] == "job"
    # running it again changes nothing
    run_job(hub, REQUEST_UNIDENTIFIED, {"request_id": waiting["id"]})
    assert len([e for e in audit_entries(client, auth, "request.rejected")
                if e["details"]["request_id"] == waiting["id"]]) == 1
    assert UNKNOWN not in json.dumps(audit_entries(client, auth, "request.rejected"))


def test_a_known_customers_request_is_never_closed_as_unidentified(
        client: FlaskClient, auth: dict[str, str], customer_id: str, hub: Hub) -> None:
    """R-DSAR-05: only requests nobody was identified for wait for other details."""
    known = submit(client, auth, type="access", email=SEED_EMAIL).json
    assert not [p for _, p in jobs(hub, REQUEST_UNIDENTIFIED) if p["request_id"] == known["id"]]
    run_job(hub, REQUEST_UNIDENTIFIED, {"request_id": known["id"]})
    assert client.get(f"/api/v1/requests/{known['id']}",
                      headers=auth).json["status"] == "pending_verification"


# -- R-DSAR-06, R-DSAR-07: rejections on a ground ------------------------------------------

def test_a_rejection_keeps_its_ground_and_reason_and_tells_the_subject(
        client: FlaskClient, auth: dict[str, str], customer_id: str, hub: Hub) -> None:
    """R-DSAR-06: a DPO refuses an excessive request with a recorded justification; the
    subject is told the ground and the reason (R-DSAR-07)."""
    rid = submit(client, auth, type="access", customer_id=customer_id).json["id"]
    done = client.post(f"/api/v1/requests/{rid}/reject", json={
        "ground": "excessive", "reason": "The fourth identical request this week"},
        headers=auth)
    assert done.status_code == 200 and done.json["status"] == "rejected"
    rejection = done.json["rejection"]
    assert rejection["ground"] == "excessive"
    assert rejection["reason"] == "The fourth identical request this week"
    assert datetime.fromisoformat(rejection["rejected_at"]) <= datetime.now(UTC)
    assert client.get(f"/api/v1/requests/{rid}", headers=auth).json["rejection"] == rejection
    (mail,) = [m for m in mails(hub) if m["template"] == "request_rejected"]
    assert mail["customer_id"] == customer_id
    assert mail["data"] == {"request_id": rid, "ground": "excessive",
                            "reason": "The fourth identical request this week"}
    (entry,) = [e for e in audit_entries(client, auth, "request.rejected")
                if e["details"]["request_id"] == rid]
    assert entry["details"]["ground"] == "excessive"


def test_a_rejection_without_a_ground_is_other_as_api_md_callers_send_it(
        client: FlaskClient, auth: dict[str, str], customer_id: str) -> None:
    """API.md names only ``reason``: a caller that sends only it gets ground ``other``."""
    rid = submit(client, auth, type="erasure", customer_id=customer_id).json["id"]
    done = client.post(f"/api/v1/requests/{rid}/reject", json={"reason": "duplicate"},
                       headers=auth)
    assert done.status_code == 200
    assert done.json["rejection"]["ground"] == "other"
    assert done.json["rejection_reason"] == "duplicate"


@pytest.mark.parametrize(("body", "field"), [
    ({"ground": "excessive"}, "reason"),
    ({"ground": "excessive", "reason": ""}, "reason"),
    ({"ground": "excessive", "reason": "   "}, "reason"),
    ({"ground": "too_expensive", "reason": "r"}, "ground"),
    ({"ground": "excessive", "reason": "r", "fee": 10}, "fee"),
])
def test_a_rejection_needs_a_known_ground_and_a_justification(
        client: FlaskClient, auth: dict[str, str], customer_id: str, hub: Hub,
        body: dict[str, Any], field: str) -> None:
    """R-DSAR-06: no refusal without a justification; 422 naming the field, nothing
    changed; no fee can be set."""
    rid = submit(client, auth, type="access", customer_id=customer_id).json["id"]
    resp = client.post(f"/api/v1/requests/{rid}/reject", json=body, headers=auth)
    assert resp.status_code == 422 and field in resp.json["errors"]
    assert resp.headers["Content-Type"] == "application/problem+json"
    got = client.get(f"/api/v1/requests/{rid}", headers=auth).json
    assert got["status"] == "pending_verification" and got["rejection"] is None
    assert not [m for m in mails(hub) if m["template"] == "request_rejected"]


def test_only_a_manage_key_rejects(client: FlaskClient, hub: Hub, customer_id: str,
                                   auth: dict[str, str]) -> None:
    """R-DSAR-06: the decision is a DPO's (requests:manage)."""
    rid = submit(client, auth, type="access", customer_id=customer_id).json["id"]
    desk = {"Authorization": "Bearer " + new_key(hub, "desk", ["requests:write",
                                                               "requests:read"])}
    resp = client.post(f"/api/v1/requests/{rid}/reject",
                       json={"ground": "manifestly_unfounded", "reason": "r"}, headers=desk)
    assert resp.status_code == 403


def test_the_openapi_document_names_the_grounds_and_the_rejection(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").json
    schemas = spec["components"]["schemas"]
    body = spec["paths"]["/api/v1/requests/{request_id}/reject"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    ground = schemas[ref]["properties"]["ground"]
    assert ground["enum"] == ["manifestly_unfounded", "excessive", "identity_not_confirmed",
                              "identity_not_found", "other"]
    assert ground["default"] == "other" and "reason" in schemas[ref]["required"]
    assert "rejection" in schemas["Request"]["properties"]


# -- R-DSAR-04 and R-DSAR-06: no identity documents, no fees ---------------------------------

def _all_properties(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            found |= set(props)
        for value in node.values():
            found |= _all_properties(value)
    elif isinstance(node, list):
        for value in node:
            found |= _all_properties(value)
    return found


def test_the_records_say_no_identity_document_is_ever_asked_for_or_kept(
        client: FlaskClient, auth: dict[str, str]) -> None:
    """R-DSAR-04, R-DSAR-03: verification is the emailed link, a portal session or a
    staff member's recorded method; no copy of an identity document, and no upload."""
    handling = client.get("/api/v1/ropa", headers=auth).json["data_subject_requests"]
    assert "never asks for, receives or stores copies of identity documents" in \
        handling["identity_documents"]
    assert [w.split(":")[0] for w in handling["identity_verification"]] == [
        "email_link", "portal_session", "staff_recorded_method"]
    spec = client.get("/api/openapi.json").json
    create = spec["paths"]["/api/v1/requests"]["post"]["requestBody"]["content"]
    assert set(create) == {"application/json"}  # no multipart, no file
    text = json.dumps(spec).lower()
    assert '"format": "binary"' not in json.dumps(
        spec["paths"]["/api/v1/requests"]) and "multipart" not in text
    words = {w for n in _all_properties(spec) for w in n.lower().split("_")}
    assert not words & {"document", "documents", "upload", "attachment", "passport", "file",
                        "files", "scan", "photo", "identity_document"}


def test_requests_are_free_no_fee_field_anywhere(client: FlaskClient,
                                                 auth: dict[str, str]) -> None:
    """R-DSAR-06, Art. 12(5): the API has no fee, price or payment field, and the records
    say requests are free."""
    words = {w for n in _all_properties(client.get("/api/openapi.json").json)
             for w in n.lower().split("_")}
    assert words  # the walk found the schemas' fields
    assert not words & {"fee", "fees", "price", "payment", "charge", "charges", "cost", "amount"}
    handling = client.get("/api/v1/ropa", headers=auth).json["data_subject_requests"]
    assert handling["fees"].startswith("None. Requests are free of charge")
