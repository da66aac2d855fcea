"""The console's door in a real browser: the demo DPO signs in with the password and a
code from the secret `init --demo` printed; a wrong code is refused; an admin adds a
staff member and sees their authenticator once (R-SEC-04)."""

from __future__ import annotations

import re
import uuid

import pyotp
from playwright.sync_api import expect

from tests.browser.conftest import STAFF_PASSWORD, Visitor, console_sign_in
from tests.e2e.live import LiveHub


def _demo_dpo(served_hub: LiveHub) -> tuple[str, str, str]:
    out = served_hub.init_output
    match = re.search(r"^demo DPO: (\S+) password: (\S+)$", out, re.MULTILINE)
    secret = re.search(r"^totp_secret: ([A-Z2-7]+)$", out, re.MULTILINE)
    assert match and secret, out
    return match.group(1), match.group(2), secret.group(1)


def test_the_demo_dpo_signs_in_with_the_printed_password_and_code(
        visitor: Visitor, served_hub: LiveHub) -> None:
    email, password, secret = _demo_dpo(served_hub)
    page = visitor.open("/")
    page.get_by_role("link", name="Open the console").click()
    page.wait_for_url("**/console/sign-in")
    visitor.check_page("console-sign-in")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_label("Code from your authenticator app").fill("000000")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("That did not work")
    visitor.check_page("console-sign-in-refused")
    console_sign_in(visitor, email, secret, password)
    expect(page.get_by_role("heading", level=1)).to_have_text("Privacy console")
    expect(page.get_by_text("Signed in as Data protection officer")).to_be_visible()
    visitor.check_page("console-overview-dpo")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/console/signed-out")
    assert visitor.page.request.get(served_hub.url("/console/"), max_redirects=0).status == 303


def test_an_address_locks_after_repeated_failures(visitor: Visitor) -> None:
    page = visitor.open("/console/sign-in")
    for _ in range(5):
        page.get_by_label("Email address").fill("nobody@staff.example")
        page.get_by_label("Password").fill("a wrong password, again")
        page.get_by_label("Code from your authenticator app").fill("123456")
        page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Too many failed sign-ins")


def test_an_admin_adds_a_staff_member_who_then_signs_in(
        staff_visitor: object, visitor: Visitor, browser: object, served_hub: LiveHub) -> None:
    staff_visitor("admin")  # type: ignore[operator]
    page = visitor.page
    page.get_by_role("link", name="Staff", exact=True).first.click()
    visitor.check_page("console-staff-list")
    page.get_by_role("link", name="Add a staff member").click()
    email = f"new-agent-{uuid.uuid4().hex[:6]}@staff.example"
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Role").select_option("agent")
    page.get_by_label("First password").fill("short")
    page.get_by_role("button", name="Add, and show their authenticator code").click()
    expect(page.locator(".field-error")).to_contain_text("at least 12 characters")
    visitor.check_page("console-staff-new-error")
    page.get_by_label("First password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Add, and show their authenticator code").click()
    expect(page.get_by_text("This is shown once.")).to_be_visible()
    expect(page.get_by_role("img", name="QR code to scan with an authenticator app")).to_be_visible()
    secret = page.locator("code.secret").inner_text().strip()
    visitor.check_page("console-staff-enrolment")
    page.get_by_role("link", name="Done").click()
    visitor.check_page("console-staff-member")

    other = browser.new_context(locale="en-GB")  # type: ignore[attr-defined]
    try:
        agent = Visitor(other.new_page(), served_hub.base_url)
        console_sign_in(agent, email, secret)
        expect(agent.page.get_by_text("Signed in as Agent")).to_be_visible()
        # an agent has no staff page: the matrix says 403
        assert agent.page.goto(served_hub.url("/console/staff/")).status == 403  # type: ignore[union-attr]
        agent.check_page("console-forbidden")
        assert pyotp.TOTP(secret).now().isdigit()
    finally:
        other.close()
