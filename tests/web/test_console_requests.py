"""The console's request queue and request page (issue 11): the queue by urgency with its
counts and filters, every action through the page with its errors, the export preview and
download, and the DPO's deadline reminders (R-DEAD-02, R-DEAD-03, R-DSAR-07, R-AUD-01,
R-SEC-03, R-SEC-04)."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

import audit
from audit.clock import utcnow
from audit.models import AuditEntry
from dsar.models import RequestSystem
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from privacy_hub.jobs.outbox import OutboxJob
from privacy_hub.usecases import requests as request_cases
from tests.conftest import SEED_EMAIL
from tests.console import csrf, make_staff, signed_in_client

ACTOR = audit.Actor("cli", "tests")


def submit(hub: Hub, customer_id: str | None, *, type: str = "access", days_ago: float = 0,
           **kw: Any) -> str:
    """A request received ``days_ago`` days ago (a DPO logging a letter, R-DSAR-01)."""
    with transaction(hub.sessions) as session:
        return str(request_cases.submit(
            hub, session, type=type, actor=ACTOR, customer_id=customer_id,
            email=None if customer_id else "someone@example.org", channel="letter",
            received_at=utcnow() - timedelta(days=days_ago), **kw)["id"])


def request_state(hub: Hub, request_id: str) -> dict[str, Any]:
    with hub.sessions() as session:
        return request_cases.get(hub, session, request_id)


def audit_for(hub: Hub, request_id: str) -> list[AuditEntry]:
    with hub.sessions() as session:
        return [e for e in session.scalars(select(AuditEntry).order_by(AuditEntry.seq))
                if json.loads(e.details).get("request_id") == request_id]


def post(client: FlaskClient, request_id: str, action: str, **data: str) -> Any:
    page = f"/console/requests/{request_id}"
    return client.post(f"{page}/{action}", data={**data, "csrf_token": csrf(client, page)})


@pytest.fixture
def dpo(hub: Hub, client: FlaskClient) -> Any:
    member = make_staff(hub, "dpo")
    signed_in_client(client, member)
    return member


def test_the_queue_shows_overdue_first_then_due_soon_with_counts_per_state(
        hub: Hub, client: FlaskClient, customer_id: str, dpo: Any) -> None:
    """R-DEAD-03: open requests show their time left; overdue ones come first, flagged."""
    later = submit(hub, customer_id, days_ago=0)
    soon = submit(hub, customer_id, type="erasure", days_ago=27)
    late = submit(hub, customer_id, days_ago=40)
    over = submit(hub, customer_id, days_ago=50)
    with transaction(hub.sessions) as session:
        request_cases.reject(hub, session, over, reason="manifestly unfounded", actor=ACTOR)
    page = client.get("/console/requests/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    positions = [html.index(f"/console/requests/{rid}") for rid in (late, soon, later, over)]
    assert positions == sorted(positions)
    # R-DEAD-01: the deadlines are one month after receipt, moved off a weekend
    now = utcnow()
    late_by = (now - datetime.fromisoformat(request_state(hub, late)["due_at"])).days
    soon_in = (datetime.fromisoformat(request_state(hub, soon)["due_at"]) - now).days
    assert 7 <= late_by <= 11 and 2 <= soon_in <= 6
    assert re.search(rf"overdue by ({late_by - 1}|{late_by}|{late_by + 1}) days", html)
    assert re.search(rf"({soon_in - 1}|{soon_in}|{soon_in + 1}) days left", html)
    inverted = {label: int(n) for n, label in
                re.findall(r'<strong>(\d+)</strong> <span>([^<]+)</span>', html)}
    assert inverted["Overdue"] == 1 and inverted["Due within 7 days"] == 1
    assert inverted["Awaiting verification"] == 3 and inverted["Rejected"] == 1
    assert inverted["Open"] == 3
    assert 'href="/console/requests/?due=overdue"' in html


def test_the_filters_narrow_the_queue_and_refuse_unknown_values(
        hub: Hub, client: FlaskClient, customer_id: str, dpo: Any) -> None:
    late = submit(hub, customer_id, days_ago=40)
    soon = submit(hub, customer_id, type="erasure", days_ago=27)
    later = submit(hub, customer_id, type="erasure")

    def shown(query: str) -> set[str]:
        html = client.get(f"/console/requests/?{query}").get_data(as_text=True)
        return {rid for rid in (late, soon, later) if f"/console/requests/{rid}" in html}

    assert shown("due=overdue") == {late}
    assert shown("due=week") == {soon}
    assert shown("type=erasure") == {soon, later}
    assert shown("type=erasure&due=week") == {soon}
    assert shown("status=open") == {late, soon, later}
    assert shown("status=completed") == set()
    bad = client.get("/console/requests/?status=lost&type=nonsense")
    assert bad.status_code == 422
    assert "Not a valid choice" in bad.get_data(as_text=True)


def test_the_overview_points_the_dpo_to_the_overdue_requests(
        hub: Hub, client: FlaskClient, customer_id: str, dpo: Any) -> None:
    """R-DEAD-03: overdue requests are flagged where the DPO starts."""
    submit(hub, customer_id, days_ago=40)
    submit(hub, customer_id, days_ago=35)
    submit(hub, customer_id, days_ago=26)
    html = client.get("/console/").get_data(as_text=True)
    assert "Needs attention" in html
    assert re.search(r'href="/console/requests/\?due=overdue"><strong>2</strong>', html)
    assert re.search(r'href="/console/requests/\?due=week"><strong>1</strong>', html)


def test_an_admin_sees_no_request_counts_on_the_overview(
        hub: Hub, client: FlaskClient, customer_id: str) -> None:
    """R-SEC-04: an admin reads no requests."""
    submit(hub, customer_id, days_ago=40)
    signed_in_client(client, make_staff(hub, "admin"))
    assert "Needs attention" not in client.get("/console/").get_data(as_text=True)


def test_a_dpo_verifies_a_request_and_the_audit_names_them(
        hub: Hub, client: FlaskClient, customer_id: str, dpo: Any) -> None:
    """R-AUD-01: the verification is audited with the staff member's id, and no email."""
    rid = submit(hub, customer_id, type="restriction",
                 details={"ground": "accuracy_contested"})
    missing = post(client, rid, "verify")
    assert missing.status_code == 422
    assert "Choose how the identity was verified" in missing.get_data(as_text=True)
    done = post(client, rid, "verify", **{"verify-method": "callback_known_number"})
    assert done.status_code == 303
    assert done.headers["Location"].endswith(f"/console/requests/{rid}?done=verified")
    assert request_state(hub, rid)["verification_method"] == "callback_known_number"
    page = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "Call back on the phone number we hold" in page and dpo.id in page
    entries = audit_for(hub, rid)
    verified = [e for e in entries if e.action == "request.verified"]
    assert [(e.actor_type, e.actor_id) for e in verified] == [("staff", dpo.id)]
    assert all(SEED_EMAIL not in e.details and dpo.email not in e.details for e in entries)
    assert SEED_EMAIL not in done.headers["Location"]


def test_extend_without_a_reason_shows_the_error_beside_the_field(
        hub: Hub, client: FlaskClient, customer_id: str, dpo: Any) -> None:
    """R-DEAD-02: an extension needs a reason the subject is told."""
    rid = submit(hub, customer_id, days_ago=3)
    resp = post(client, rid, "extend", **{"extend-months": "2", "extend-reason": "  "})
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert re.search(r'<span class="field-error" id="extend-reason-error">Enter the reason', html)
    assert 'aria-invalid="true"' in html
    assert request_state(hub, rid)["extension_months"] == 0


def test_extend_before_the_deadline_tells_the_subject_and_moves_the_due_date(
        hub: Hub, client: FlaskClient, customer_id: str, dpo: Any) -> None:
    """R-DEAD-02: extended once by up to two months, with reasons, before the deadline."""
    rid = submit(hub, customer_id, days_ago=3)
    before = datetime.fromisoformat(request_state(hub, rid)["due_at"])
    resp = post(client, rid, "extend", **{"extend-months": "2",
                                         "extend-reason": "Orders in three systems to search"})
    assert resp.status_code == 303
    after = request_state(hub, rid)
    assert after["extension_months"] == 2
    assert datetime.fromisoformat(after["due_at"]) > before + timedelta(days=55)
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "The subject is told the new due date" in page
    assert "Orders in three systems to search" in page
    (entry,) = [e for e in audit_for(hub, rid) if e.action == "request.extended"]
    assert (entry.actor_type, entry.actor_id) == ("staff", dpo.id)
    assert "Orders" not in entry.details
    with hub.sessions() as session:
        kinds = [j.kind for j in session.scalars(select(OutboxJob))]
    assert "mail" in kinds


def test_extend_after_the_original_deadline_is_refused_with_a_message(
        hub: Hub, client: FlaskClient, customer_id: str, dpo: Any) -> None:
    """R-DEAD-02: after the original due date an extension is refused (409), on the page."""
    rid = submit(hub, customer_id, days_ago=40)
    resp = post(client, rid, "extend", **{"extend-months": "1",
                                         "extend-reason": "Too many requests this month"})
    assert resp.status_code == 409
    html = resp.get_data(as_text=True)
    assert "The deadline can no longer be extended" in html and 'role="alert"' in html
    assert request_state(hub, rid)["extension_months"] == 0
    assert not [e for e in audit_for(hub, rid) if e.action == "request.extended"]


def test_reject_needs_a_reason_and_then_tells_the_subject(
        hub: Hub, client: FlaskClient, customer_id: str, dpo: Any) -> None:
    """R-DSAR-07: a refusal without a reason is 422; with one, the subject is told."""
    rid = submit(hub, customer_id)
    missing = post(client, rid, "reject", **{"reject-reason": ""})
    assert missing.status_code == 422
    assert re.search(r'id="reject-reason-error">Enter the reason', missing.get_data(as_text=True))
    assert request_state(hub, rid)["status"] == "pending_verification"
    done = post(client, rid, "reject", **{"reject-ground": "excessive",
                                          "reject-reason": "Third identical request this month"})
    assert done.status_code == 303
    state = request_state(hub, rid)
    assert state["status"] == "rejected"
    assert state["rejection_reason"] == "Third identical request this month"
    page = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "right to complain" in page
    (entry,) = [e for e in audit_for(hub, rid) if e.action == "request.rejected"]
    assert (entry.actor_type, entry.actor_id) == ("staff", dpo.id)
    again = post(client, rid, "reject", **{"reject-ground": "other", "reject-reason": "Once more"})
    assert again.status_code == 409
    assert "not possible in the request" in again.get_data(as_text=True)


def _system_with_a_part(hub: Hub, customer_id: str) -> tuple[str, str]:
    """An access request being processed, waiting for the system ``crm``."""
    with transaction(hub.sessions) as session:
        hub.systems.create(session, name="crm", scopes=["requests:read"],
                           webhook_url="https://crm.example/hook", actor=ACTOR)
    rid = submit(hub, customer_id, verified=True, verification_method="portal_session")
    return rid, "crm"


def test_a_failed_system_is_sent_the_request_again_and_the_request_closed_with_a_note(
        hub: Hub, client: FlaskClient, customer_id: str, dpo: Any) -> None:
    """R-DEAD-04: propagation to downstream systems is tracked, a failure retried."""
    rid, system = _system_with_a_part(hub, customer_id)
    assert request_state(hub, rid)["status"] == "processing"
    assert post(client, rid, f"systems/{system}/retry").status_code == 409
    with transaction(hub.sessions) as session:
        request_cases.report(hub, session, rid, system=system, status="failed", data=None,
                             actor=audit.Actor("system", "crm"))
    page = client.get(f"/console/requests/{rid}").get_data(as_text=True)
    assert "failed" in page and "Send it again now" in page
    started = utcnow()
    assert post(client, rid, f"systems/{system}/retry").status_code == 303
    assert request_state(hub, rid)["systems"][0]["status"] == "pending"
    with hub.sessions() as session:
        resent = session.scalars(select(OutboxJob).where(
            OutboxJob.event_type == "request.created").order_by(OutboxJob.created_at)).all()[-1]
    assert resent.next_attempt_at <= utcnow() and resent.created_at >= started
    (entry,) = [e for e in audit_for(hub, rid) if e.action == "request.resent"
                and e.actor_type == "staff"]
    assert entry.actor_id == dpo.id
    assert post(client, rid, "systems/nosuch/retry").status_code == 404
    assert post(client, rid, "close", **{"close-note": ""}).status_code == 422
    closed = post(client, rid, "close", **{"close-note": "CRM confirmed by phone"})
    assert closed.status_code == 303
    assert request_state(hub, rid)["status"] == "completed"


def _completed_access(hub: Hub, customer_id: str) -> str:
    rid, system = _system_with_a_part(hub, customer_id)
    with transaction(hub.sessions) as session:
        request_cases.report(hub, session, rid, system=system, status="done",
                             data={"orders": [{"id": "o-17", "total": "42.00"}]},
                             actor=audit.Actor("system", "crm"))
    assert request_state(hub, rid)["status"] == "completed"
    return rid


def test_the_export_preview_shows_the_data_and_the_download_gives_the_api_bytes(
        hub: Hub, client: FlaskClient, customer_id: str, auth: dict[str, str], dpo: Any) -> None:
    """R-AUD-01: the preview and the download are audited reads naming the staff member."""
    rid = _completed_access(hub, customer_id)
    page = client.get(f"/console/requests/{rid}").get_data(as_text=True)
    assert f'href="/console/requests/{rid}/export"' in page
    preview = client.get(f"/console/requests/{rid}/export")
    assert preview.status_code == 200
    html = preview.get_data(as_text=True)
    for shown in ("data.json", "information.json", "index.html", "Ada", "o-17", "withdraw"):
        assert shown in html, shown
    download = client.get(f"/console/requests/{rid}/export.zip")
    assert download.status_code == 200 and download.mimetype == "application/zip"
    api = client.get(f"/api/v1/requests/{rid}/export", headers=auth)
    assert download.data == api.data
    with zipfile.ZipFile(io.BytesIO(download.data)) as zf:
        assert json.loads(zf.read("data.json"))["profile"]["first_name"] == "Ada"
    actions = {(e.action, e.actor_type, e.actor_id) for e in audit_for(hub, rid)}
    assert ("export.previewed", "staff", dpo.id) in actions
    assert ("export.downloaded", "staff", dpo.id) in actions


def test_an_export_exists_only_for_a_completed_access_request(
        hub: Hub, client: FlaskClient, customer_id: str, dpo: Any) -> None:
    rid = submit(hub, customer_id)
    assert client.get(f"/console/requests/{rid}/export").status_code == 409
    assert client.get(f"/console/requests/{rid}/export.zip").status_code == 409


def test_an_auditor_reads_the_queue_and_requests_but_acts_on_none(
        hub: Hub, client: FlaskClient, customer_id: str) -> None:
    """R-SEC-04: the auditor reads everything, changes nothing, sees no personal data."""
    rid = _completed_access(hub, customer_id)
    open_one = submit(hub, customer_id, days_ago=2)
    auditor = make_staff(hub, "auditor")
    signed_in_client(client, auditor)
    assert client.get("/console/requests/").status_code == 200
    page = client.get(f"/console/requests/{open_one}")
    assert page.status_code == 200 and "Extend the deadline" not in page.get_data(as_text=True)
    token = csrf(client, "/console/requests/")
    for action, data in (("verify", {"verify-method": "in_person"}),
                         ("extend", {"extend-months": "1", "extend-reason": "complex"}),
                         ("reject", {"reject-reason": "unfounded"}),
                         ("close", {"close-note": "done"})):
        resp = client.post(f"/console/requests/{open_one}/{action}",
                           data={**data, "csrf_token": token})
        assert resp.status_code == 403, action
    assert request_state(hub, open_one)["status"] == "pending_verification"
    preview = client.get(f"/console/requests/{rid}/export")
    assert preview.status_code == 200
    html = preview.get_data(as_text=True)
    assert "withheld" in html and "Ada" not in html and "o-17" not in html
    assert client.get(f"/console/requests/{rid}/export.zip").status_code == 403


def test_unknown_requests_are_404_not_errors(client: FlaskClient, hub: Hub, dpo: Any) -> None:
    rid = "0b5e9a52-5d5e-4d6f-9a51-3f0c7a7e2b11"
    assert client.get(f"/console/requests/{rid}").status_code == 404
    assert client.get(f"/console/requests/{rid}/export").status_code == 404
    token = csrf(client, "/console/requests/")
    resp = client.post(f"/console/requests/{rid}/reject", data={"reject-reason": "x", "csrf_token": token})
    assert resp.status_code == 404


class _Capture:
    """A mailer that keeps what the worker sends."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, mail: Any, *, job_id: str) -> None:
        self.sent.append(mail)


def test_the_dpo_is_reminded_once_a_week_before_and_once_when_a_request_is_overdue(
        hub: Hub, customer_id: str) -> None:
    """R-DEAD-03: with the worker's clock moved, each reminder fires once, and links to
    the request's console page."""
    from privacy_hub.jobs.worker import Worker

    object.__setattr__(hub, "settings", hub.settings.with_(dpo_email="dpo@shop.example"))
    rid = submit(hub, customer_id)
    due = datetime.fromisoformat(request_state(hub, rid)["due_at"])
    now = [utcnow()]
    mailer = _Capture()
    worker = Worker(hub, mailer=mailer, clock=lambda: now[0])

    def reminders() -> list[Any]:
        return [m for m in mailer.sent if m.template in ("deadline_reminder",
                                                           "deadline_overdue")]

    def run_at(when: datetime) -> None:
        now[0] = when
        worker.run_once()

    run_at(due - timedelta(days=8))
    assert reminders() == []
    run_at(due - timedelta(days=7) + timedelta(minutes=1))
    run_at(due - timedelta(days=3))
    (first,) = reminders()
    assert first.message["To"] == "dpo@shop.example"
    assert "due" in first.message["Subject"] and "overdue" not in first.message["Subject"]
    text = first.message.get_body(("plain",)).get_content()
    assert f"/console/requests/{rid}" in text and SEED_EMAIL not in text
    run_at(due + timedelta(minutes=1))
    run_at(due + timedelta(days=5))
    assert len(reminders()) == 2
    assert reminders()[1].template == "deadline_overdue"
    assert "overdue" in reminders()[1].message["Subject"]


def test_a_request_over_before_its_deadline_sends_no_reminder(
        hub: Hub, customer_id: str) -> None:
    from privacy_hub.jobs.worker import Worker

    object.__setattr__(hub, "settings", hub.settings.with_(dpo_email="dpo@shop.example"))
    rid = submit(hub, customer_id)
    with transaction(hub.sessions) as session:
        request_cases.reject(hub, session, rid, reason="duplicate", actor=ACTOR)
    due = datetime.fromisoformat(request_state(hub, rid)["due_at"])
    mailer = _Capture()
    Worker(hub, mailer=mailer, clock=lambda: due + timedelta(days=1)).run_once()
    assert not [m for m in mailer.sent if m.template.startswith("deadline_")]
    with hub.sessions() as session:
        parts = session.scalars(select(RequestSystem)).all()
    assert parts == []
