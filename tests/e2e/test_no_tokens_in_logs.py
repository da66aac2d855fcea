"""No token of a mailed link, and no address, in what a served hub logs (R-SEC-03).

The embedded default, as a developer runs it: `privacy-hub init --demo`, then `privacy-hub
serve` (granian, with the in-process worker writing mail to the instance's outbox folder).
A customer with a recognisable address is taken through every link that carries a token:
the double opt-in link, the portal sign-in link, a request's verification link, the
download link of its export and an unsubscribe link. Each link is read the way a developer
reads it, with `privacy-hub mail show`, and followed. Afterwards the server's output (its
access log, its error log, the worker's lines) holds none of the tokens and not the
address, and shows the token routes with the token replaced.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.conftest import SEED_EMAIL
from tests.e2e.live import LiveHub, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[LiveHub]:
    live = LiveHub(tmp_path / "instance", workers=2, threads=4)
    live.env["PRIVACY_HUB_BASE_URL"] = live.base_url
    try:
        live.init()
        live.start()
        yield live
    finally:
        live.close()


def _server_output(hub: LiveHub) -> str:
    """What `privacy-hub serve` printed: granian's logs (its access log among them), the
    app's and the worker's."""
    return "\n".join(p.read_text(encoding="utf-8", errors="replace")
                     for p in sorted(hub.log_dir.glob("serve-*.log")))


def _mail_link(hub: LiveHub, subject_word: str, seen: set[str]) -> str:
    """The link of the newest mail whose subject has ``subject_word``, as `privacy-hub mail
    list` and `mail show` print it (the mail is written by the background worker)."""

    def newest() -> str | None:
        listing = hub.cli("mail", "list")
        assert listing.returncode == 0, listing.stderr
        for line in reversed(listing.stdout.splitlines()):
            mail_id = line.split()[0]
            if subject_word.lower() in line.lower() and mail_id not in seen:
                assert SEED_EMAIL.lower() in line.lower()  # list names the recipient
                seen.add(mail_id)
                return mail_id
        return None

    mail_id = wait_for(f"a mail about {subject_word!r}", newest, timeout=60)
    shown = hub.cli("mail", "show", mail_id)
    assert shown.returncode == 0, shown.stderr
    assert f"to: {SEED_EMAIL.lower()}" in shown.stdout.lower()
    links = re.findall(r"http://127\.0\.0\.1:\d+/\S+", shown.stdout)
    assert links, shown.stdout
    return links[0]


def _csrf(session: requests.Session, url: str) -> str:
    page = session.get(url, timeout=10)
    assert page.status_code == 200, page.text[:300]
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text) or \
        re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text[:300]
    return found.group(1)


def _token_of(link: str) -> str:
    parts = urlsplit(link)
    query = parse_qs(parts.query).get("token")
    return query[0] if query else parts.path.rstrip("/").rsplit("/", 1)[-1]


def test_tokens_of_followed_links_and_addresses_never_reach_the_server_log(
        hub: LiveHub) -> None:
    """R-SEC-03: follow every link with a token; the server's output has none of them."""
    api = hub.headers
    cid = requests.post(hub.url("/api/v1/customers"), headers=api, timeout=10, json={
        "email": SEED_EMAIL, "first_name": "Ada"}).json()["id"]
    seen: set[str] = set()
    tokens: list[str] = []

    # Double opt-in: the confirmation link carries ?token=.
    decided = requests.post(hub.url(f"/api/v1/customers/{cid}/consents"), headers=api,
                            timeout=10, json={"purpose": "marketing.email", "granted": True})
    assert decided.status_code == 201 and decided.json()["status"] == "pending_confirmation"
    link = _mail_link(hub, "confirm", seen)
    assert "/consent/confirm?token=" in link
    tokens.append(_token_of(link))
    assert requests.get(link, timeout=10).status_code == 200
    confirmed = requests.post(link.split("?")[0], data={"token": tokens[-1]}, timeout=10)
    assert confirmed.status_code == 200

    # Portal sign-in: ?token= again, then a signed-in session.
    browser = requests.Session()
    asked = browser.post(hub.url("/portal/"), timeout=10, data={
        "email": SEED_EMAIL, "csrf_token": _csrf(browser, hub.url("/portal/"))})
    assert asked.status_code == 200
    link = _mail_link(hub, "sign-in", seen)
    assert "/portal/sign-in/confirm?token=" in link
    tokens.append(_token_of(link))
    signed_in = browser.post(hub.url("/portal/sign-in/confirm"), timeout=10,
                             allow_redirects=False,
                             data={"token": tokens[-1], "csrf_token": _csrf(browser, link)})
    assert signed_in.status_code == 303

    # A request's verification link (?token=), then its export's download link (/exports/).
    created = requests.post(hub.url("/api/v1/requests"), headers=api, timeout=10,
                            json={"type": "access", "email": SEED_EMAIL})
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    link = _mail_link(hub, "request", seen)
    assert f"/requests/{rid}/verify?token=" in link
    tokens.append(_token_of(link))
    assert requests.get(link, timeout=10).status_code == 200
    assert requests.post(link.split("?")[0], data={"token": tokens[-1]},
                         timeout=10).status_code == 200
    wait_for("the access request to complete", lambda: requests.get(
        hub.url(f"/api/v1/requests/{rid}"), headers=api, timeout=10).json()["status"]
        == "completed")
    link = _mail_link(hub, "ready", seen)
    assert "/exports/" in link
    tokens.append(_token_of(link))
    download = requests.get(link, timeout=10)
    assert download.status_code == 200 and download.content[:2] == b"PK"

    # An unsubscribe link (the token is a path segment), opened and used.
    made = requests.post(hub.url(f"/api/v1/customers/{cid}/unsubscribe-link"), headers=api,
                         timeout=10, json={"purpose": "marketing.email"})
    assert made.status_code == 200, made.text
    link = made.json()["url"]
    assert "/unsubscribe/" in link
    tokens.append(_token_of(link))
    assert requests.get(link, timeout=10).status_code == 200
    assert requests.post(link, timeout=10).status_code == 200

    # Links that were never issued are logged the same way.
    forged = secrets.token_urlsafe(24)
    tokens.append(forged)
    for path in (f"/exports/{forged}", f"/unsubscribe/{forged}",
                 f"/consent/confirm?token={forged}", f"/portal/sign-in/confirm?token={forged}"):
        assert requests.get(hub.url(path), timeout=10).status_code < 500

    hub.stop()  # flush: everything the server and its worker had to say is in its log
    output = _server_output(hub)
    assert all(len(t) >= 16 for t in tokens), tokens
    leaked = [t for t in tokens if t in output]
    assert leaked == [], f"{len(leaked)} tokens in the server log"
    assert SEED_EMAIL.lower() not in output.lower()
    # The requests were logged, with their tokens replaced.
    assert '"GET /exports/[token]" 200' in output
    assert '"POST /unsubscribe/[token]" 200' in output
    assert '"GET /consent/confirm" 200' in output
    # The worker said it wrote each mail, naming the file and nothing else.
    written = re.findall(r"written to (\S+)", output)
    assert len(written) >= 4 and all(re.fullmatch(r"outbox/[\w.-]+\.eml", w) for w in written)
