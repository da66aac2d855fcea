"""A downstream service as a real peer: examples/newsletter_service against a running hub.

Double opt-in by the mailed link, a campaign that asks the gate before every send, and
access and erasure requests answered through signed webhooks (issue 4, R-GATE-10,
R-ERASE-04).
"""

from __future__ import annotations

import email
import io
import json
import re
import threading
import zipfile
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
import requests

from examples.newsletter_service.newsletter import Newsletter, webhook_server
from privacy_hub.client import HubClient
from tests.conftest import SEED_EMAIL
from tests.e2e.live import LiveHub, free_port, wait_for

pytestmark = pytest.mark.slow



@pytest.fixture
def hub(tmp_path: Path) -> Iterator[LiveHub]:
    live = LiveHub(tmp_path / "instance", workers=2)
    try:
        live.init()
        live.start()
        yield live
    finally:
        live.close()


def test_newsletter_service_as_a_real_peer(hub: LiveHub) -> None:
    port = free_port()
    created = hub.cli("systems", "create", "newsletter", "--scope", "consents:read",
                      "--scope", "consents:write", "--scope", "data:read",
                      "--purpose", "marketing.email",
                      "--webhook-url", f"http://127.0.0.1:{port}/hook")
    api_key = re.search(r"^api_key: (\S+)$", created.stdout, re.M).group(1)  # type: ignore[union-attr]
    secret = re.search(r"^webhook_secret: (\S+)$", created.stdout, re.M).group(1)  # type: ignore[union-attr]
    sent: list[EmailMessage] = []
    service = Newsletter(HubClient(hub.base_url, api_key), system_name="newsletter",
                         send=sent.append)
    server = webhook_server(service, secret, port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    admin = hub.headers
    try:
        cid = requests.post(hub.url("/api/v1/customers"), headers=admin, timeout=10, json={
            "email": SEED_EMAIL, "first_name": "Ada"}).json()["id"]
        pending = requests.post(hub.url(f"/api/v1/customers/{cid}/consents"), headers=admin,
                                timeout=10, json={"purpose": "marketing.email", "granted": True})
        assert pending.json()["status"] == "pending_confirmation"
        assert service.send_campaign("Winter sale", "20% off") == 0  # not confirmed yet

        # The worker inside `serve` writes the double opt-in mail to instance/outbox.
        outbox = hub.instance / "outbox"
        def ours() -> email.message.Message | None:
            for path in sorted(outbox.glob("*.eml")):
                msg = email.message_from_bytes(path.read_bytes())
                if msg["To"] == SEED_EMAIL.lower():
                    return msg
            return None

        message = wait_for("the confirmation mail", ours)
        text = next(p.get_payload(decode=True).decode() for p in message.walk()
                    if p.get_content_type() == "text/plain")
        link = re.search(r"(http://\S+/consent/confirm\?token=\S+)", text).group(1)  # type: ignore[union-attr]
        token = link.split("token=")[1]
        confirmed = requests.post(hub.url("/consent/confirm"), data={"token": token}, timeout=10)
        assert confirmed.status_code == 200

        assert service.send_campaign("Winter sale", "20% off") == 1
        assert sent[0]["To"] == SEED_EMAIL.lower()
        assert sent[0]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

        # Access: the hub asks every system; the newsletter answers with what it holds.
        access = requests.post(hub.url("/api/v1/requests"), headers=admin, timeout=10, json={
            "type": "access", "customer_id": cid, "identity_verified": True,
            "verification_method": "signed_in"}).json()
        done = wait_for("the access request to complete", lambda: (
            r := requests.get(hub.url(f"/api/v1/requests/{access['id']}"), headers=admin,
                              timeout=10).json())["status"] == "completed" and r)
        assert done["systems"] == [{"system": "newsletter", "status": "done",
                                    "updated_at": done["systems"][0]["updated_at"]}]
        export = requests.get(hub.url(f"/api/v1/requests/{access['id']}/export"), headers=admin,
                              timeout=10)
        data = json.loads(zipfile.ZipFile(io.BytesIO(export.content)).read("data.json"))
        held = data["downstream_systems"][0]["data"]["newsletter_sends"]
        assert [h["campaign"] for h in held] == ["Winter sale"]

        # Erasure: the newsletter forgets the customer and reports done.
        erasure = requests.post(hub.url("/api/v1/requests"), headers=admin, timeout=10, json={
            "type": "erasure", "customer_id": cid, "identity_verified": True,
            "verification_method": "signed_in"}).json()
        wait_for("the erasure to complete", lambda: requests.get(
            hub.url(f"/api/v1/requests/{erasure['id']}"), headers=admin,
            timeout=10).json()["status"] == "completed")
        assert service.held_for(cid) == []
        assert service.send_campaign("Spring sale", "new season") == 0
        gate = requests.get(hub.url(f"/api/v1/consent-check?customer_id={cid}"
                                    "&purpose=marketing.email"), headers=admin, timeout=10).json()
        assert gate["reason"] == "erased"
    finally:
        server.shutdown()
        server.server_close()
    logs = hub.logs()
    assert SEED_EMAIL not in logs and SEED_EMAIL.lower() not in logs
