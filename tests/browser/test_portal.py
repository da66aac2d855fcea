"""The customer portal in a real browser (the portal issue): sign in with the mailed link,
see one's data, allow and withdraw purposes with the API's check following at once."""

from __future__ import annotations

import requests
from playwright.sync_api import Page

from tests.browser.conftest import Visitor
from tests.e2e.live import LiveHub
from tests.smtp import Inbox, link_in

LIAM = "liam.oconnor@example.com"   # demo customer, locale en-IE
MILA = "mila.weber@example.com"     # demo customer, locale de-DE


def _customer_id(hub: LiveHub, email: str) -> str:
    found = requests.post(hub.url("/api/v1/customers/lookup"), headers=hub.headers,
                          json={"email": email}, timeout=10).json()
    return str(found["items"][0]["id"])


def _check(hub: LiveHub, customer_id: str, purpose: str) -> dict[str, object]:
    answer = requests.get(hub.url("/api/v1/consent-check"), headers=hub.headers, timeout=10,
                          params={"customer_id": customer_id, "purpose": purpose})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def sign_in(visitor: Visitor, inbox: Inbox, email: str) -> str:
    """Ask for a link, take it from the mail, press the button: the link used."""
    before = len([m for m in inbox.to(email) if "sign-in" in str(m["Subject"])])
    page = visitor.open("/portal/")
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Send me a sign-in link").click()
    page.get_by_role("heading", name="Check your email").wait_for()
    link = link_in(inbox.wait_for_mail(email, "sign-in", after=before))
    assert link.startswith(visitor.base_url + "/portal/sign-in/confirm?token=")
    page.goto(link)
    page.get_by_role("button").filter(has_text="Sign in").click()
    page.wait_for_url("**/portal/data")
    return link


def test_sign_in_by_mailed_link_shows_my_data_and_the_link_works_once(
        visitor: Visitor, inbox: Inbox) -> None:
    page = visitor.open("/portal/")
    visitor.check_page("portal-sign-in")
    link = sign_in(visitor, inbox, LIAM)
    assert page.get_by_role("heading", level=1).inner_text() == "My data"
    assert "O'Connor" in page.locator("main").inner_text()
    visitor.check_page("portal-my-data")

    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="You are signed out").wait_for()
    response = page.goto(link)  # the same link again: refused
    assert response is not None and response.status == 410
    page.get_by_role("heading", name="This link is no longer valid").wait_for()
    visitor.check_page("portal-link-used")
    page.goto(visitor.base_url + "/portal/data")
    assert page.url.endswith("/portal/")  # signed out: back to the sign-in page


def test_unknown_address_gets_the_same_page_and_a_no_account_mail(
        visitor: Visitor, inbox: Inbox) -> None:
    """No account enumeration: the page says the same; only the mailbox learns more."""
    page = visitor.open("/portal/")
    page.get_by_label("Email address").fill("nobody-here@example.net")
    page.get_by_role("button", name="Send me a sign-in link").click()
    page.get_by_role("heading", name="Check your email").wait_for()
    visitor.check_page("portal-link-sent")
    mail = inbox.wait_for_mail("nobody-here@example.net", "sign-in")
    assert "no customer account" in mail.get_payload(0).get_payload(decode=True).decode()


def test_an_address_that_is_not_one_is_shown_beside_its_field(visitor: Visitor) -> None:
    page = visitor.open("/portal/")
    page.get_by_label("Email address").fill("not an address")
    page.get_by_role("button", name="Send me a sign-in link").click()
    page.locator(".error-summary").wait_for()
    assert "Enter an email address" in page.locator(".field-error").inner_text()
    assert page.get_by_label("Email address").get_attribute("aria-invalid") == "true"
    visitor.check_page("portal-sign-in-error")


def _clicks_to(page: Page, purpose_title: str, button: str) -> int:
    """Press ``button`` of one purpose; the number of presses it took (always one)."""
    card = page.locator("article.purpose").filter(has=page.get_by_role("heading", name=purpose_title))
    card.get_by_role("button", name=button).click()
    page.get_by_role("status").wait_for()
    return 1


def test_allowing_and_withdrawing_a_purpose_changes_the_api_check_at_once(
        visitor: Visitor, inbox: Inbox, served_hub: LiveHub) -> None:
    """R-CONSENT-06: withdrawing takes no more steps than allowing; R-GATE-02: the next
    check follows; R-CONSENT-01: nothing is allowed before the customer says so."""
    cid = _customer_id(served_hub, LIAM)
    sign_in(visitor, inbox, LIAM)
    page = visitor.open("/portal/choices")
    assert page.get_by_role("button", name="Allow all").is_visible()
    assert page.get_by_role("button", name="Refuse all").is_visible()
    assert page.locator("input[type=checkbox]:checked").count() == 0  # nothing pre-ticked
    assert _check(served_hub, cid, "marketing.sms")["allowed"] is False
    visitor.check_page("portal-choices")

    give = _clicks_to(page, "Offers by text message", "Allow")
    assert _check(served_hub, cid, "marketing.sms")["reason"] == "granted"
    withdraw = _clicks_to(page, "Offers by text message", "Withdraw")
    assert _check(served_hub, cid, "marketing.sms")["reason"] == "withdrawn"
    assert withdraw <= give

    page = visitor.open("/portal/history")
    rows = page.locator("tbody tr")
    assert rows.count() >= 2
    assert "withdrawn" in rows.nth(0).inner_text()
    visitor.check_page("portal-history")
    with page.expect_download() as download:
        rows.nth(0).get_by_role("link").click()
    receipt = download.value.path().read_text()  # type: ignore[union-attr]
    assert '"jws"' in receipt


def test_a_german_customer_reads_the_portal_in_german(visitor: Visitor, inbox: Inbox) -> None:
    sign_in(visitor, inbox, MILA)
    page = visitor.page
    assert page.locator("html").get_attribute("lang") == "de"
    assert page.get_by_role("heading", level=1).inner_text() == "Meine Daten"
    visitor.check_page("portal-my-data-de")
    page = visitor.open("/portal/why")
    visitor.check_page("portal-why-de")


def test_a_german_customer_reads_the_purposes_in_german(visitor: Visitor, inbox: Inbox) -> None:
    """Art. 12(1), R-INFO-01: the demo's German purpose texts on the German portal; the
    English default text where the page is English."""
    sign_in(visitor, inbox, MILA)
    page = visitor.open("/portal/choices")
    assert page.locator("html").get_attribute("lang") == "de"
    card = page.locator("article.purpose").filter(
        has=page.get_by_role("heading", name="Newsletter und Angebote per E-Mail"))
    assert "persönliche Angebote per E-Mail" in card.inner_text()
    assert page.get_by_role("heading", name="Newsletter and offers by email").count() == 0
    visitor.check_page("portal-choices-de")
    page = visitor.open("/portal/why")
    page.get_by_role("heading", name="Rechnungen und Buchhaltungsunterlagen").wait_for()
    page.get_by_role("link", name="English").click()
    page.wait_for_function("() => document.documentElement.lang === 'en'")
    page.get_by_role("heading", name="Invoicing and accounting records").wait_for()


SOFIA = "sofia.rossi@example.com"   # demo customer, locale it-IT (the pages fall back to English)
NOAH = "noah.martin@example.com"    # demo customer, locale fr-FR


def test_download_my_data_gives_a_zip_with_my_profile(visitor: Visitor, inbox: Inbox) -> None:
    """R-ACC-04/R-ACC-06: a signed-in request is verified at once; the ZIP is downloaded in
    the authenticated session and holds JSON and a readable summary."""
    import io
    import json
    import zipfile

    sign_in(visitor, inbox, SOFIA)
    page = visitor.open("/portal/download")
    visitor.check_page("portal-download")
    page.get_by_role("button", name="Get a copy of all my data").click()
    link = page.get_by_role("link", name="Download the ZIP file")
    link.wait_for()
    visitor.check_page("portal-download-ready")
    with page.expect_download() as download:
        link.click()
    archive = zipfile.ZipFile(io.BytesIO(download.value.path().read_bytes()))  # type: ignore[union-attr]
    assert {"data.json", "information.json", "index.html"} <= set(archive.namelist())
    data = json.loads(archive.read("data.json"))
    assert SOFIA in json.dumps(data)


def test_rectification_corrects_my_name_and_errors_stand_beside_their_field(
        visitor: Visitor, inbox: Inbox) -> None:
    sign_in(visitor, inbox, SOFIA)
    page = visitor.open("/portal/data/correct")
    page.get_by_label("Date of birth").fill("12 April 1990")
    page.get_by_role("button", name="Send the correction").click()
    page.locator(".error-summary").wait_for()
    assert page.get_by_label("Date of birth").get_attribute("aria-invalid") == "true"
    visitor.check_page("portal-correct-error")
    page.get_by_label("Date of birth").fill("1990-04-12")
    page.get_by_label("Last name").fill("Rossi-Bianchi")
    page.get_by_role("button", name="Send the correction").click()
    page.get_by_role("status").wait_for()
    visitor.check_page("portal-requests")
    assert "Done" in page.locator("tbody tr").first.inner_text()
    assert "Rossi-Bianchi" in visitor.open("/portal/data").locator("main").inner_text()


def test_erasure_explains_what_stays_and_erases_after_confirmation(
        visitor: Visitor, inbox: Inbox, served_hub: LiveHub) -> None:
    """R-ERASE-02: the legal holds are explained before, and listed after; the customer is
    erased (the API says so) and signed out."""
    cid = _customer_id(served_hub, NOAH)
    sign_in(visitor, inbox, NOAH)
    page = visitor.open("/portal/erase")
    assert "Invoicing and accounting records" in page.locator("main").inner_text()
    visitor.check_page("portal-erase")
    page.get_by_role("button", name="Erase my data").click()  # not confirmed: refused
    page.locator(".error-summary").wait_for()
    page.get_by_label("I understand that this erases my data and cannot be undone.").check()
    page.get_by_role("button", name="Erase my data").click()
    page.get_by_role("heading", name="Your data is erased").wait_for()
    visitor.check_page("portal-erased")
    profile = requests.get(served_hub.url(f"/api/v1/customers/{cid}"), headers=served_hub.headers,
                           timeout=10).json()
    assert profile["status"] == "erased"
    page.goto(visitor.base_url + "/portal/data")
    assert page.url.endswith("/portal/")


def test_every_portal_page_is_accessible_on_a_phone_and_a_desktop(
        visitor: Visitor, inbox: Inbox) -> None:
    """axe-core finds no serious or critical violation on any page (the portal issue)."""
    sign_in(visitor, inbox, LIAM)
    for path, name in (("/portal/why", "portal-why"), ("/portal/requests", "portal-requests-list"),
                       ("/portal/restrict", "portal-restrict"), ("/portal/object", "portal-object"),
                       ("/portal/data/correct", "portal-correct")):
        visitor.open(path)
        visitor.check_page(name)
    page = visitor.open("/portal/restrict")
    page.get_by_role("button", name="Restrict the use of my data").click()
    page.locator(".error-summary").wait_for()
    visitor.check_page("portal-restrict-error")
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="You are signed out").wait_for()
    visitor.check_page("portal-signed-out")
