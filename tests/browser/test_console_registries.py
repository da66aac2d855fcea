"""The registries in Chromium: a DPO registers a system and sees its key once, sends a
test webhook that a real receiver gets, registers a purpose (errors beside the fields)
and makes a material new version, and publishes a notice (R-ROPA, R-SEC, R-AUD).
Every page is checked with axe-core and for CSP violations, at phone and desktop widths."""

from __future__ import annotations

import hashlib
import time
import uuid

from playwright.sync_api import expect

from tests.browser.conftest import Visitor
from tests.e2e.webhook_sink import WebhookSink


def test_a_dpo_registers_a_system_sees_the_key_once_and_sends_a_test_webhook(
        staff_visitor: object, visitor: Visitor) -> None:
    staff_visitor("dpo")  # type: ignore[operator]
    page = visitor.page
    name = f"crm-{uuid.uuid4().hex[:6]}"
    with WebhookSink() as sink:
        page.get_by_role("link", name="Systems", exact=True).first.click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Systems")
        visitor.check_page("console-systems")
        page.get_by_role("link", name="Register a system").click()
        page.get_by_label("Name", exact=True).fill("Not A Name")
        page.get_by_label("consents:read").check()
        page.get_by_label("Webhook URL (optional)").fill(sink.url)
        page.get_by_role("button", name="Register, and show its API key").click()
        expect(page.locator("#name-error")).to_be_visible()
        visitor.check_page("console-system-new-error")
        page.get_by_label("Name", exact=True).fill(name)
        page.get_by_role("button", name="Register, and show its API key").click()
        expect(page.get_by_text("This is shown once.")).to_be_visible()
        key = page.locator("#api-key").inner_text().strip()
        assert key.startswith("phk_")
        visitor.check_page("console-system-key")
        page.get_by_role("link", name="Done").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(name)
        expect(page.get_by_text(key)).to_have_count(0)  # never shown again

        page.get_by_role("button", name="Send a test webhook").click()
        expect(page.get_by_role("status")).to_contain_text("A test webhook is queued")
        deadline = time.monotonic() + 20
        while not sink.received and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sink.received and sink.received[0].json["type"] == "hub.test"
        page.reload()
        expect(page.locator("#deliveries").get_by_text("delivered", exact=True)).to_be_visible()
        visitor.check_page("console-system")


def test_a_dpo_registers_a_purpose_makes_a_material_version_and_publishes_a_notice(
        staff_visitor: object, visitor: Visitor) -> None:
    staff_visitor("dpo")  # type: ignore[operator]
    page = visitor.page
    key = f"marketing.test_{uuid.uuid4().hex[:6]}"
    page.get_by_role("link", name="Purposes", exact=True).first.click()
    visitor.check_page("console-purposes")
    page.get_by_role("link", name="Register a purpose").click()
    page.get_by_label("Key", exact=True).fill(key)
    page.get_by_label("Legal basis").select_option("consent")
    page.get_by_label("Title", exact=True).fill("Product news")
    page.get_by_label("email", exact=True).check()
    page.get_by_label("Retention (days)").fill("365")
    page.get_by_role("button", name="Register the purpose").click()
    expect(page.locator("#description-error")).to_be_visible()  # consent: say what for
    visitor.check_page("console-purpose-new-error")
    page.get_by_label("Description", exact=True).fill("News about our products, monthly.")
    page.get_by_label("Categories of personal data").fill("contact data")
    page.get_by_label("Title in German").fill("Produktneuigkeiten")
    page.get_by_label("Description in German").fill("Neuigkeiten zu unseren Produkten, monatlich.")
    page.get_by_role("button", name="Register the purpose").click()
    expect(page.get_by_role("status")).to_contain_text("version 1")
    expect(page.get_by_text("Neuigkeiten zu unseren Produkten, monatlich.")).to_be_visible()
    visitor.check_page("console-purpose")

    page.get_by_role("link", name="Change it").click()
    visitor.check_page("console-purpose-version")
    page.get_by_label("Description", exact=True).fill("News and partner offers, weekly.")
    page.get_by_label("This is a material change").check()
    page.get_by_role("button", name="Save the change").click()
    expect(page.get_by_role("status")).to_contain_text("customers are asked again")
    expect(page.get_by_text("material: asked again")).to_be_visible()
    visitor.check_page("console-purpose-history")

    page.get_by_role("link", name="All purposes").click()
    page.get_by_role("link", name="Privacy notices").click()
    text = f"Notice {key}: we use your email address for product news."
    page.get_by_role("textbox", name="Version").fill(f"v-{uuid.uuid4().hex[:6]}")
    page.get_by_role("textbox", name="Language").fill("en")
    page.get_by_role("textbox", name="Text").fill(text)
    page.get_by_role("button", name="Publish").click()
    expect(page.locator("#sha256")).to_have_text(hashlib.sha256(text.encode()).hexdigest())
    visitor.check_page("console-notice")
    page.get_by_role("link", name="All notices").click()
    visitor.check_page("console-notices")
