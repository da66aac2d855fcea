"""A DPO in a real browser: looks the demo customer up for a stated reason, sees their
consents and requests, finds the look-up in the audit log, verifies the chain and opens
the records of processing (R-AUD-01, R-AUD-02, R-ROPA-01, R-SEC-03)."""

from __future__ import annotations

import re

import requests
from playwright.sync_api import expect

from tests.browser.conftest import Visitor
from tests.e2e.live import LiveHub

DEMO_EMAIL = "mila.weber@example.com"


def test_a_dpo_looks_up_a_customer_then_finds_it_in_the_audit_log(
        staff_visitor: object, visitor: Visitor, served_hub: LiveHub) -> None:
    filed = requests.post(served_hub.url("/api/v1/requests"), headers=served_hub.headers,
                          json={"type": "access", "email": DEMO_EMAIL}, timeout=30)
    assert filed.status_code == 201
    staff_visitor("dpo")  # type: ignore[operator]
    page = visitor.page
    page.get_by_role("link", name="Customers", exact=True).first.click()
    page.wait_for_url("**/console/customers/")
    visitor.check_page("console-lookup")

    page.get_by_label("Email address or phone number").fill(DEMO_EMAIL)
    page.get_by_role("button", name="Look up").click()
    expect(page.locator("#reason_text-error")).to_be_visible()
    visitor.check_page("console-lookup-no-reason")

    page.get_by_label("A data subject request").check()
    page.get_by_label("The reason in a few words").fill("Access request by letter, ticket 4711")
    page.get_by_label("Email address or phone number").fill(DEMO_EMAIL)
    page.get_by_role("button", name="Look up").click()
    page.wait_for_url(re.compile(r".*/console/customers/[0-9a-f-]{36}$"))
    assert DEMO_EMAIL not in page.url
    customer_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_role("heading", name="Consents and legal bases")).to_be_visible()
    expect(page.get_by_text(DEMO_EMAIL)).to_be_visible()  # the DPO may read the profile
    expect(page.get_by_role("link", name="Access (Art. 15)")).to_have_attribute(
        "href", f"/console/requests/{filed.json()['id']}")
    visitor.check_page("console-customer")

    page.get_by_role("link", name="Signed receipt").first.click()
    expect(page.get_by_role("heading", name="Consent receipt", level=1)).to_be_visible()
    visitor.check_page("console-customer-receipt")

    page.get_by_role("link", name="Audit log", exact=True).first.click()
    page.get_by_label("Action").fill("customer.looked_up")
    page.get_by_role("button", name="Filter").click()
    row = page.locator("table.audit tbody tr").filter(has_text=customer_id).last
    expect(row).to_contain_text("ticket 4711")
    expect(row).to_contain_text("data_subject_request")
    assert DEMO_EMAIL not in page.content()
    visitor.check_page("console-audit-filtered")

    page.get_by_role("button", name="Verify the chain").click()
    expect(page.get_by_role("status")).to_contain_text("The chain is intact")
    visitor.check_page("console-audit-verified")

    page.get_by_role("link", name="Records of processing", exact=True).first.click()
    expect(page.get_by_role("heading", name="Records of processing activities")).to_be_visible()
    expect(page.get_by_role("link", name="Download as CSV")).to_be_visible()
    visitor.check_page("console-ropa")


def test_an_auditor_sees_no_personal_field(staff_visitor: object, visitor: Visitor) -> None:
    staff_visitor("auditor")  # type: ignore[operator]
    page = visitor.open("/console/customers/")
    page.get_by_label("A complaint by the customer").check()
    page.get_by_label("The reason in a few words").fill("Complaint about newsletter, case 88")
    page.get_by_label("Email address or phone number").fill(DEMO_EMAIL)
    page.get_by_role("button", name="Look up").click()
    expect(page.get_by_role("heading", name="Consent history")).to_be_visible()
    expect(page.get_by_text("not the customer's name or contact details")).to_be_visible()
    assert DEMO_EMAIL not in page.content() and "Mila" not in page.content()
    visitor.check_page("console-customer-auditor")
