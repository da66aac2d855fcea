"""Every role, in a real browser, sees 403 on each console page its role does not
include, and the page itself where it does (R-SEC-04, least privilege; the matrix is
privacy_hub/staff/roles.py, the one place that decides)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from privacy_hub.staff.roles import ROLES, allows
from tests.browser.conftest import Visitor

#: each console page a person opens from the navigation, with the permission it needs
PAGES = {
    "/console/requests/": "requests:read",
    "/console/customers/": "customers:lookup",
    "/console/purposes/": "purposes:read",
    "/console/purposes/-/new": "purposes:write",
    "/console/notices/": "purposes:read",
    "/console/systems/": "systems:read",
    "/console/systems/-/new": "systems:write",
    "/console/audit/": "audit:verify",
    "/console/audit/checkpoints.json": "audit:verify",
    "/console/ropa/": "ropa:read",
    "/console/ropa/ropa.csv": "ropa:read",
    "/console/figures/": "figures:read",
    "/console/staff/": "staff:manage",
    "/console/staff/new": "staff:manage",
}


@pytest.mark.parametrize("role", ROLES)
def test_each_roles_forbidden_pages_answer_403_in_the_browser(
        staff_visitor: object, visitor: Visitor, role: str) -> None:
    staff_visitor(role)  # type: ignore[operator]
    page = visitor.page
    refused = []
    for path, permission in PAGES.items():
        response = page.request.get(visitor.base_url + path, max_redirects=0)
        expected = 200 if allows(role, permission) else 403
        assert response.status == expected, f"{role}: {path} answered {response.status}"
        if expected == 403:
            refused.append(path)
    assert refused or role == "dpo"
    if refused:
        page.goto(visitor.base_url + refused[0])
        expect(page.get_by_role("heading", level=1)).to_have_text("This page is not for your role")
    # the navigation offers only what the role may open
    page.goto(visitor.base_url + "/console/")
    links = page.locator("nav.sections a").evaluate_all("els => els.map(e => e.pathname)")
    for path, permission in PAGES.items():
        if path in links:
            assert allows(role, permission), f"{role} is offered {path}"
