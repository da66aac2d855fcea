"""The "keep my account" page of the inactivity warning (R-RET-02) in a real browser: the
mailed link shows one button, pressing it keeps the account, a second use is refused; each
state is checked with axe-core and photographed at phone and desktop widths."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import requests

from tests.browser.conftest import Visitor
from tests.e2e.live import LiveHub
from tests.smtp import Inbox, link_in

NOAH = "noah.martin@example.com"   # demo customer


def _customer_id(hub: LiveHub, email: str) -> str:
    found = requests.post(hub.url("/api/v1/customers/lookup"), headers=hub.headers,
                          json={"email": email}, timeout=10).json()
    return str(found["items"][0]["id"])


def _inactive_since(hub: LiveHub, customer_id: str, years: int) -> None:
    """The customer's last purchase, sign-in, consent or request lay ``years`` back."""
    at = (datetime.now(UTC) - timedelta(days=365 * years)).replace(tzinfo=None)
    with sqlite3.connect(hub.instance / "hub.db") as db:
        changed = db.execute("UPDATE customers SET last_active_at = ? WHERE id = ?",
                             (at.isoformat(sep=" "), customer_id)).rowcount
    assert changed == 1


def test_the_keep_link_shows_a_button_keeps_the_account_and_works_once(
        served_hub: LiveHub, visitor: Visitor, inbox: Inbox) -> None:
    """R-RET-02: warned after three years without activity, the customer keeps the account
    with one press; the account is no longer due for erasure and the link is used up."""
    cid = _customer_id(served_hub, NOAH)
    _inactive_since(served_hub, cid, years=3)
    assert "warned 1," in served_hub.cli("retention", "inactive").stdout
    link = link_in(inbox.wait_for_mail(NOAH, "will be deleted"))
    assert link.startswith(visitor.base_url + "/portal/keep?token=")

    page = visitor.open(link.removeprefix(visitor.base_url))
    page.get_by_role("heading", name="Keep your customer account").wait_for()
    visitor.check_page("portal-keep")
    page.get_by_role("button", name="Keep my account").click()
    page.get_by_role("heading", name="Your account stays").wait_for()
    visitor.check_page("portal-kept")

    # kept: nobody is warned or erased any more, and the link does nothing twice
    assert served_hub.cli("retention", "inactive", "--dry-run").stdout.startswith(
        "would warn 0, would erase 0")
    again = page.goto(link)
    assert again is not None and again.status == 410
    page.get_by_role("heading", name="This link is no longer valid").wait_for()
    visitor.check_page("portal-keep-used")
    profile = requests.get(served_hub.url(f"/api/v1/customers/{cid}"),
                           headers=served_hub.headers, timeout=10).json()
    assert profile["status"] == "active"
