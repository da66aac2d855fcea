"""The shop's cookie banner in a real browser, on the demo shop page under the hub's strict
Content-Security-Policy (the portal issue; R-EPRIV-01/02, R-CONSENT-01/08, R-SIG-01)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Page

from tests.browser.conftest import Visitor
from tests.e2e.live import LiveHub

#: the hub's cookies that need no consent (README "Cookies"): security and sign-in
STRICTLY_NECESSARY = {"hub_session", "hub_portal", "hub_console"}
LIAM = "liam.oconnor@example.com"
NOAH = "noah.martin@example.com"


def _customer_id(hub: LiveHub, email: str) -> str:
    found = requests.post(hub.url("/api/v1/customers/lookup"), headers=hub.headers,
                          json={"email": email}, timeout=10).json()
    return str(found["items"][0]["id"])


def _check(hub: LiveHub, customer_id: str, purpose: str) -> dict[str, object]:
    return dict(requests.get(hub.url("/api/v1/consent-check"), headers=hub.headers, timeout=10,
                             params={"customer_id": customer_id, "purpose": purpose}).json())


def _status(page: Page, category: str) -> str:
    return page.locator(f"#consent-status [data-category={category}]").inner_text()


def _banner(page: Page):  # type: ignore[no-untyped-def]
    return page.get_by_role("region", name="Your privacy choices")


def test_nothing_is_stored_before_a_choice_and_both_answers_weigh_the_same(
        visitor: Visitor) -> None:
    page = visitor.open("/demo/shop")
    _banner(page).wait_for()
    # R-EPRIV-01: only strictly necessary storage (the CSRF token of the page's form, a
    # session cookie), not even the choice cookie yet; nothing in localStorage
    cookies = page.context.cookies()
    assert {c["name"] for c in cookies} <= STRICTLY_NECESSARY
    assert all(c["httpOnly"] and c["expires"] == -1 for c in cookies)
    assert page.evaluate("window.localStorage.length") == 0
    accept = page.get_by_role("button", name="Accept all")
    reject = page.get_by_role("button", name="Reject all")
    a, r = accept.bounding_box(), reject.bounding_box()
    assert a and r and abs(a["width"] - r["width"]) < 2 and abs(a["height"] - r["height"]) < 2
    assert accept.get_attribute("class") == reject.get_attribute("class")  # R-CONSENT-08
    assert _status(page, "statistics") == "Statistics: off"
    visitor.check_page("demo-shop-banner")
    page.get_by_role("button", name="Choose for each purpose").click()
    boxes = page.locator(".phcb-settings input[type=checkbox]:not([disabled])")
    assert boxes.count() >= 2 and all(not boxes.nth(i).is_checked() for i in range(boxes.count()))
    visitor.check_page("demo-shop-banner-settings")


def test_reject_all_is_remembered_and_not_asked_again(visitor: Visitor) -> None:
    page = visitor.open("/demo/shop")
    page.get_by_role("button", name="Reject all").click()
    _banner(page).wait_for(state="detached")
    cookie = next(c for c in page.context.cookies() if c["name"] == "hub_consent")
    assert 0 < cookie["expires"] - time.time() <= 395 * 86400 + 60  # at most 13 months
    page.reload()
    # A function, not an expression: Playwright evaluates an expression string again on
    # every poll, which the page's CSP (no 'unsafe-eval') refuses after the first try.
    page.wait_for_function("() => window.PrivacyHubConsent && window.PrivacyHubConsent.ready")
    assert _banner(page).count() == 0
    assert _status(page, "statistics") == "Statistics: off"
    visitor.check_page("demo-shop-after-choice")


def test_accept_all_then_signing_in_makes_it_the_customers_consent(
        visitor: Visitor, served_hub: LiveHub) -> None:
    cid = _customer_id(served_hub, LIAM)
    assert _check(served_hub, cid, "analytics.behaviour")["allowed"] is False
    page = visitor.open("/demo/shop")
    with page.expect_response("**/consent/banner/choices") as sent:
        page.get_by_role("button", name="Accept all").click()
    assert sent.value.status == 201
    page.wait_for_function("() => window.PrivacyHubConsent.allowed('statistics')")
    assert _status(page, "statistics") == "Statistics: on"
    page.get_by_label("Demo customer").select_option(LIAM)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("status").wait_for()
    answer = _check(served_hub, cid, "analytics.behaviour")
    assert answer["allowed"] is True and answer["reason"] == "granted"
    history = requests.get(served_hub.url(f"/api/v1/customers/{cid}/consents/history"),
                           headers=served_hub.headers, timeout=10).json()["items"]
    assert history[-1]["source"] == "cookie_banner"
    assert history[-1]["evidence"]["banner_action"] == "accept_all"


def test_an_old_or_outdated_choice_is_asked_again(visitor: Visitor) -> None:
    """13 months at most, and again when the notice changes (R-EPRIV-02)."""
    for stale in ({"notice": "2026-12", "expires": int(time.time() * 1000) - 1000},
                  {"notice": "2019-01", "expires": int(time.time() * 1000) + 86400000}):
        value = json.dumps({"visitor": "6f9619ff-8b86-4d11-b42d-00c04fc964ff",
                            "categories": {"statistics": True}, **stale})
        visitor.page.context.clear_cookies()
        visitor.page.context.add_cookies([{"name": "hub_consent", "value": requests.utils.quote(value),
                                           "url": visitor.base_url + "/"}])
        page = visitor.open("/demo/shop")
        _banner(page).wait_for()
        assert _status(page, "statistics") == "Statistics: off"


@pytest.fixture
def gpc_context(browser: Browser) -> Iterator[BrowserContext]:
    """A browser that sends Global Privacy Control (header and navigator property)."""
    context = browser.new_context(locale="en-GB", extra_http_headers={"Sec-GPC": "1"})
    context.add_init_script("Object.defineProperty(navigator, 'globalPrivacyControl', "
                            "{get: () => true})")
    yield context
    context.close()


def test_gpc_refuses_sale_and_sharing_without_asking(gpc_context: BrowserContext,
                                                     served_hub: LiveHub) -> None:
    """R-SIG-01: "Accept all" under GPC still refuses the sale-or-sharing category."""
    cid = _customer_id(served_hub, NOAH)
    page = gpc_context.new_page()
    page.goto(served_hub.url("/demo/shop"))
    page.get_by_role("button", name="Choose for each purpose").click()
    marketing = page.locator("#phcb-marketing")
    assert marketing.is_disabled() and not marketing.is_checked()
    assert "Global Privacy Control" in page.locator(".phcb-settings").inner_text()
    with page.expect_response("**/consent/banner/choices") as sent:
        page.get_by_role("button", name="Accept all").click()
    assert sent.value.status == 201  # what the hub kept: the checks after signing in
    page.wait_for_function("() => window.PrivacyHubConsent.ready")
    assert _status(page, "marketing") == "Marketing: off"
    assert _status(page, "statistics") == "Statistics: on"
    page.get_by_label("Demo customer").select_option(NOAH)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("status").wait_for()
    assert _check(served_hub, cid, "advertising.partners")["allowed"] is False
    assert _check(served_hub, cid, "analytics.behaviour")["allowed"] is True


def test_a_german_browser_reads_the_banners_purposes_in_german(browser: Browser,
                                                                served_hub: LiveHub) -> None:
    """Art. 12(1): the demo's German purpose texts in the banner for a German browser."""
    context = browser.new_context(locale="de-DE")
    try:
        page = context.new_page()
        page.goto(served_hub.url("/demo/shop"))
        page.get_by_role("region", name="Ihre Datenschutz-Einstellungen").wait_for()
        page.get_by_role("button", name="Für jeden Zweck wählen").click()
        settings = page.locator(".phcb-settings")
        settings.wait_for()
        assert "Nutzungsanalyse: Wir messen Besuche" in settings.inner_text()
        assert "Werbung mit Partnern" in settings.inner_text()
        assert "Behavioural analytics" not in settings.inner_text()
    finally:
        context.close()
