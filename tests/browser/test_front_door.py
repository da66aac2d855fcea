"""The front door: what a new user sees at http://127.0.0.1:8000/ after `make run`."""

from __future__ import annotations

from tests.browser.conftest import Visitor


def test_front_door_links_the_portal_the_api_docs_and_shows_the_shop(visitor: Visitor) -> None:
    page = visitor.open("/")
    assert page.title().endswith("Example Shop")
    assert page.get_by_role("heading", level=1).inner_text() == "Your data at Example Shop"
    docs = page.get_by_role("link", name="Read the API documentation")
    assert docs.get_attribute("href") == "/api/docs"
    visitor.check_page("front-door")


def test_front_door_speaks_german_to_a_german_browser(browser, served_hub) -> None:
    context = browser.new_context(locale="de-DE")
    try:
        page = context.new_page()
        page.goto(served_hub.url("/"))
        assert page.locator("html").get_attribute("lang") == "de"
        assert page.get_by_role("heading", level=1).inner_text() == "Ihre Daten bei Example Shop"
    finally:
        context.close()


def test_language_switch_is_remembered_and_returns_to_the_page(visitor: Visitor) -> None:
    page = visitor.open("/")
    page.get_by_role("link", name="Deutsch").click()
    page.wait_for_url(visitor.base_url + "/")
    assert page.locator("html").get_attribute("lang") == "de"
    page.goto(visitor.base_url + "/")
    assert page.locator("html").get_attribute("lang") == "de"
    visitor.check_page("front-door-de")


def test_pages_forbid_inline_script_and_framing(visitor: Visitor) -> None:
    response = visitor.page.goto(visitor.base_url + "/")
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-frame-options"] == "DENY"
