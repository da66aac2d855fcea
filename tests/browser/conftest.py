"""Pages in a real browser: Debian's Chromium driven by Playwright, against a real hub.

`make test` installs /usr/bin/chromium (apt) and axe-core (npm, into .cache/npm); nothing
is downloaded by Playwright itself. Each page is checked with axe-core (no serious or
critical violation), for Content-Security-Policy violations, and photographed at phone
and desktop widths into tests/output/screens/ (not committed).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from tests.e2e.live import LiveHub
from tests.smtp import Inbox, smtp_server

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / ".cache" / "npm" / "node_modules" / "axe-core" / "axe.min.js"
SCREENS = ROOT / "tests" / "output" / "screens"
WIDTHS = {"phone": (375, 812), "desktop": (1280, 900)}


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "no /usr/bin/chromium: run `make browser-deps` (make test does)"
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                      args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    with smtp_server() as box:
        yield box


@pytest.fixture(scope="module")
def served_hub(tmp_path_factory: pytest.TempPathFactory, inbox: Inbox) -> Iterator[LiveHub]:
    """`privacy-hub init --demo` and `serve` on the embedded default, as `make run` does,
    sending its mail to a real SMTP server on loopback."""
    hub = LiveHub(tmp_path_factory.mktemp("browser") / "instance", workers=1, threads=4)
    hub.env.update({"PRIVACY_HUB_SMTP_HOST": "127.0.0.1",
                    "PRIVACY_HUB_SMTP_PORT": str(inbox.port),
                    "PRIVACY_HUB_BASE_URL": hub.base_url})
    try:
        hub.init()
        hub.start()
        yield hub
    finally:
        hub.close()


@dataclass
class Visitor:
    """A browser tab with a person's eyes: it reads pages, and reports what is wrong."""

    page: Page
    base_url: str
    csp_violations: list[str] = field(default_factory=list)

    def open(self, path: str) -> Page:
        response = self.page.goto(self.base_url + path)
        assert response is not None and response.status < 400, f"{path}: {response and response.status}"
        return self.page

    def accessibility_violations(self) -> list[dict[str, Any]]:
        """axe-core's serious and critical violations on the page as it is now."""
        self.page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
        result = self.page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
        return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
                 "nodes": [n["target"] for n in v["nodes"]][:5]}
                for v in result if v["impact"] in ("serious", "critical")]

    def check_page(self, name: str) -> None:
        """axe-core finds no serious or critical violation, the CSP was never broken, and
        the page is photographed at phone and desktop widths."""
        violations = self.accessibility_violations()
        assert not violations, f"{name}: " + json.dumps(violations, indent=1)
        assert not self.csp_violations, f"{name}: {self.csp_violations}"
        screenshot(self.page, name)


def screenshot(page: Page, name: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size
    safe = re.sub(r"[^a-z0-9_-]+", "-", name.lower())
    for label, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(SCREENS / f"{safe}-{label}.png"), full_page=True)
    if before:
        page.set_viewport_size(before)


@pytest.fixture
def visitor(browser: Browser, served_hub: LiveHub) -> Iterator[Visitor]:
    """A fresh browser context (no cookies) speaking English."""
    assert AXE.exists(), f"no {AXE}: run `make browser-deps` (make test does)"
    context = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    v = Visitor(page, served_hub.base_url)

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            v.csp_violations.append(message.text)

    page.on("console", on_console)
    try:
        yield v
    finally:
        context.close()


STAFF_PASSWORD = "browser tests staff password"


def console_sign_in(visitor: Visitor, email: str, secret: str,
                    password: str = STAFF_PASSWORD) -> Page:
    """Sign in on the console's page, as a person types it."""
    import pyotp

    page = visitor.open("/console/sign-in")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_label("Code from your authenticator app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/")
    return page


@pytest.fixture
def staff_visitor(visitor: Visitor, served_hub: LiveHub) -> Any:
    """``staff_visitor(role)``: the visitor, signed in to the console as a new staff member
    of that role (created with `privacy-hub staff create`, as an operator would)."""
    import uuid

    def sign_in(role: str = "dpo") -> Visitor:
        email = f"{role}-{uuid.uuid4().hex[:8]}@staff.example"
        secret = served_hub.create_staff(email, role, STAFF_PASSWORD)
        console_sign_in(visitor, email, secret)
        return visitor

    return sign_in
