"""The request queue in a real browser, against `privacy-hub serve` with its worker: a DPO
finds the overdue request first, takes an access request from the queue to its download,
extends one and rejects one on a ground with a reason (R-DEAD-02, R-DEAD-03, R-DSAR-06,
R-DSAR-07)."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from playwright.sync_api import expect

from tests.browser.conftest import Visitor
from tests.e2e.live import LiveHub
from tests.smtp import Inbox

NOAH = "noah.martin@example.com"    # demo customer
SOFIA = "sofia.rossi@example.com"   # demo customer
MILA = "mila.weber@example.com"     # demo customer


def _submit(hub: LiveHub, email: str, type: str, days_ago: int = 0) -> str:
    """A request logged by the DPO's service desk through the API, received ``days_ago``."""
    body: dict[str, Any] = {"type": type, "email": email, "channel": "letter"}
    if days_ago:
        body["received_at"] = (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()
    resp = requests.post(hub.url("/api/v1/requests"), headers=hub.headers, json=body, timeout=10)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def test_a_dpo_takes_an_access_request_from_the_queue_to_its_download(
        staff_visitor: Any, served_hub: LiveHub, inbox: Inbox) -> None:
    access = _submit(served_hub, NOAH, "access", days_ago=3)
    overdue = _submit(served_hub, SOFIA, "erasure", days_ago=40)
    visitor: Visitor = staff_visitor("dpo")
    page = visitor.page
    # The overview names the overdue request first (R-DEAD-03).
    attention = page.get_by_role("region", name="Needs attention")
    attention.get_by_role("link", name="overdue requests").click()
    page.wait_for_url("**/console/requests/?due=overdue")
    expect(page.locator(f'a[href="/console/requests/{overdue}"]')).to_be_visible()
    expect(page.locator(f'a[href="/console/requests/{access}"]')).to_have_count(0)
    expect(page.get_by_text(re.compile(r"overdue by \d+ days")).first).to_be_visible()
    page.get_by_role("link", name="Clear the filters").click()
    page.wait_for_url("**/console/requests/")
    rows = page.locator("table.queue tbody tr")
    expect(rows.first).to_contain_text("Erasure")
    expect(rows.first).to_contain_text("overdue by")
    visitor.check_page("console-requests-queue")

    page.locator(f'a[href="/console/requests/{access}"]').click()
    page.wait_for_url(f"**/console/requests/{access}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Access (Art. 15) request")
    expect(page.get_by_text("not verified yet")).to_be_visible()
    visitor.check_page("console-request-pending")
    before = len([m for m in inbox.to(NOAH) if "ready to download" in str(m["Subject"])])
    page.get_by_label("How was the identity verified?").select_option("callback_known_number")
    page.get_by_role("button", name="Mark as verified").click()
    expect(page.get_by_role("status")).to_contain_text("The identity is verified")
    expect(page.locator("dl.facts")).to_contain_text("Completed")
    # The worker inside `serve` mails the subject their link to the export.
    inbox.wait_for_mail(NOAH, "ready to download", after=before)
    visitor.check_page("console-request-completed")

    page.get_by_role("link", name="Preview the export").click()
    page.wait_for_url(f"**/console/requests/{access}/export")
    expect(page.get_by_role("heading", level=1)).to_have_text("Export preview")
    expect(page.get_by_role("rowheader", name="data.json")).to_be_visible()
    expect(page.locator(".export-section").first).to_be_visible()
    expect(page.get_by_text(NOAH).first).to_be_visible()
    visitor.check_page("console-request-export-preview")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the ZIP").click()
    path = download.value.path()
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as zf:
        assert {"data.json", "information.json", "index.html"} <= set(zf.namelist())
        data = json.loads(zf.read("data.json"))
    assert data["request_id"] == access and data["profile"]["email"] == NOAH
    api = requests.get(served_hub.url(f"/api/v1/requests/{access}/export"),
                       headers=served_hub.headers, timeout=10)
    assert api.content == path.read_bytes()


def test_a_dpo_extends_one_request_and_rejects_another_with_a_reason(
        staff_visitor: Any, served_hub: LiveHub) -> None:
    extend = _submit(served_hub, MILA, "erasure", days_ago=5)
    reject = _submit(served_hub, MILA, "access", days_ago=1)
    late = _submit(served_hub, MILA, "portability", days_ago=35)
    visitor: Visitor = staff_visitor("dpo")
    page = visitor.open(f"/console/requests/{extend}")
    page.get_by_role("button", name="Extend the deadline").click()
    expect(page.locator("#extend-reason-error")).to_contain_text("Enter the reason")
    page.get_by_label("Extend by").select_option("2")
    page.get_by_label("Reason for the extension (the subject is told)").fill(
        "Records in three archives must be searched")
    page.get_by_role("button", name="Extend the deadline").click()
    expect(page.get_by_role("status")).to_contain_text("The deadline is extended")
    expect(page.locator("dl.facts")).to_contain_text("Records in three archives")
    expect(page.locator("dl.facts")).to_contain_text("2 month(s)")

    page = visitor.open(f"/console/requests/{late}")
    page.get_by_label("Reason for the extension (the subject is told)").fill("Too many at once")
    page.get_by_role("button", name="Extend the deadline").click()
    expect(page.get_by_role("alert")).to_contain_text("can no longer be extended")

    page = visitor.open(f"/console/requests/{reject}")
    page.get_by_role("button", name="Reject the request").click()
    expect(page.get_by_role("alert")).to_contain_text("Enter the reason")
    # R-DSAR-06: the ground is chosen, its error beside the select
    expect(page.get_by_role("alert")).to_contain_text("Choose the ground for the rejection")
    expect(page.locator("#reject-ground-error")).to_contain_text("Choose the ground")
    visitor.check_page("console-request-reject-error")
    page.get_by_label("Ground for the rejection").select_option("excessive")
    page.get_by_label("Reason for the rejection (the subject is told)").fill(
        "The same request was answered two days ago")
    page.get_by_role("button", name="Reject the request").click()
    expect(page.get_by_role("status")).to_contain_text("right to complain")
    expect(page.locator("dl.facts")).to_contain_text("The same request was answered two days ago")
    expect(page.locator("dl.facts")).to_contain_text("Excessive, in particular repetitive")
    expect(page.get_by_role("heading", name="Actions")).to_have_count(0)
