"""The figures page in a real browser: a DPO opens the figures, reads the charts and
tables, and changes the period (issue 11; R-DEAD-03)."""

from __future__ import annotations

from typing import Any

import requests
from playwright.sync_api import expect

from tests.browser.conftest import Visitor
from tests.e2e.live import LiveHub


def _seed(served_hub: LiveHub) -> None:
    """A customer with a consent granted and withdrawn, and a request logged by letter."""
    api = served_hub.url("/api/v1")
    h: dict[str, Any] = served_hub.headers
    cust = requests.post(f"{api}/customers", json={"email": "figures@example.org"},
                         headers=h, timeout=10)
    assert cust.status_code == 201, cust.text
    cid = cust.json()["id"]
    for granted in (True, False):
        resp = requests.post(f"{api}/customers/{cid}/consents", headers=h, timeout=10, json={
            "purpose": "personalisation.recommendations", "granted": granted,
            "collection_method": "web_form"})
        assert resp.status_code == 201, resp.text
    resp = requests.post(f"{api}/requests", json={"type": "access", "customer_id": cid},
                         headers=h, timeout=10)
    assert resp.status_code == 201, resp.text


def test_a_dpo_reads_the_figures_and_changes_the_period(
        staff_visitor: Any, served_hub: LiveHub) -> None:
    _seed(served_hub)
    visitor: Visitor = staff_visitor("dpo")
    page = visitor.page
    page.get_by_role("link", name="Figures", exact=True).first.click()
    page.wait_for_url("**/console/figures/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Figures")
    expect(page.get_by_label("Period", exact=True)).to_have_value("90d")
    charts = page.locator("svg.chart")
    assert charts.count() >= 5
    for i in range(charts.count()):
        box = charts.nth(i).bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 40
    expect(page.get_by_role("img", name="Personalised recommendations, per week",
                            exact=False)).to_be_visible()
    expect(page.get_by_role("table", name="Requests received in the period, by type")
           ).to_contain_text("Access (Art. 15)")
    visitor.check_page("console-figures-90d")

    page.get_by_label("Period", exact=True).select_option("12m")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**/console/figures/?period=12m")
    expect(page.get_by_label("Period", exact=True)).to_have_value("12m")
    expect(page.get_by_text("Last 12 months: from")).to_be_visible()
    figure = page.locator("figure", has_text="Personalised recommendations")
    figure.get_by_text("Numbers per month").click()
    expect(page.get_by_role("table", name="Personalised recommendations: consent decisions")
           ).to_be_visible()
    visitor.check_page("console-figures-12m")
