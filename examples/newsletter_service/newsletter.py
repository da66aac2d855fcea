"""A small newsletter service wired to Privacy Hub with the Python client.

It is what a CRM team would write: before every send it asks the gate (failing closed),
it reads only the fields the marketing purpose allows, it puts a one-click unsubscribe
link in every message, and it acts on the hub's signed webhooks: it forgets a customer
who withdrew or was erased, and it answers data subject requests with what it holds.

Run it:  python -m examples.newsletter_service.newsletter --hub http://127.0.0.1:8000 \\
           --api-key phk_... --webhook-secret whsec_... --port 8025
"""

from __future__ import annotations

import argparse
import json
import logging
import smtplib
import sqlite3
import threading
from collections.abc import Callable
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from privacy_hub.client import Denied, HubClient, HubError

log = logging.getLogger("newsletter")
PURPOSE = "marketing.email"


class Newsletter:
    """Sends campaigns to the customers the hub allows, and keeps a small local log."""

    def __init__(self, client: HubClient, *, system_name: str, db_path: str = ":memory:",
                 send: Callable[[EmailMessage], None] | None = None) -> None:
        self.client = client
        self.system_name = system_name
        self.send = send or (lambda msg: log.info("would send %s", msg["Subject"]))
        self._db = sqlite3.connect(db_path, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("CREATE TABLE IF NOT EXISTS sends (customer_id TEXT, campaign TEXT,"
                             " sent_at TEXT DEFAULT CURRENT_TIMESTAMP)")

    # -- sending ----------------------------------------------------------------------
    def send_campaign(self, campaign: str, body: str) -> int:
        """Send to every customer the gate allows now; returns how many were sent."""
        sent = 0
        for customer_id in self.client.audience(PURPOSE):
            # Ask again right before the send: consent may have been withdrawn since.
            if not self.client.is_allowed(customer_id, PURPOSE):
                continue
            try:
                data = self.client.read_data(customer_id, PURPOSE)["data"]
            except Denied:
                continue
            if not data.get("email"):
                continue
            link = self.client.unsubscribe_link(customer_id, PURPOSE)
            msg = EmailMessage()
            msg["Subject"] = campaign
            msg["To"] = data["email"]
            msg["From"] = "newsletter@shop.example"
            msg["List-Unsubscribe"] = link["list_unsubscribe"]
            msg["List-Unsubscribe-Post"] = link["list_unsubscribe_post"]
            greeting = f"Hello {data.get('first_name') or 'there'},"
            msg.set_content(f"{greeting}\n\n{body}\n\nUnsubscribe in one click: {link['url']}\n")
            self.send(msg)
            with self._lock:
                self._db.execute("INSERT INTO sends (customer_id, campaign) VALUES (?, ?)",
                                 (customer_id, campaign))
                self._db.commit()
            sent += 1
        return sent

    def held_for(self, customer_id: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT campaign, sent_at FROM sends WHERE customer_id = ?",
                                    (customer_id,)).fetchall()
        return [{"campaign": c, "sent_at": t} for c, t in rows]

    def forget(self, customer_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM sends WHERE customer_id = ?", (customer_id,))
            self._db.commit()

    # -- webhooks -----------------------------------------------------------------------
    def handle_event(self, event: dict[str, Any]) -> None:
        kind, data = event["type"], event["data"]
        if kind == "customer.erased":
            self.forget(data["customer_id"])
            self._report(data.get("request_id"), "done")
        elif kind == "request.created":
            if data["type"] in ("access", "portability"):
                self._report(data["request_id"], "done",
                             {"newsletter_sends": self.held_for(data["customer_id"])})
            elif data["type"] in ("rectification", "restriction", "objection"):
                self._report(data["request_id"], "done")
        elif kind == "consent.changed" and data.get("status") != "granted":
            pass  # nothing stored per consent: every send asks the gate first

    def _report(self, request_id: str | None, status: str,
                data: dict[str, Any] | None = None) -> None:
        if not request_id:
            return
        try:
            self.client.report_request(request_id, self.system_name, status, data)
        except HubError as exc:
            if exc.status != 409:  # already complete, or nothing asked of this system
                raise


def webhook_server(service: Newsletter, secret: str, port: int,
                   host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """An HTTP server that verifies the hub's signature before acting on an event."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            header = self.headers.get("Privacy-Hub-Signature", "")
            if not HubClient.verify_webhook(body, header, secret):
                self.send_response(401)
                self.end_headers()
                return
            try:
                service.handle_event(json.loads(body))
            except Exception:
                log.exception("handling a webhook failed; the hub will retry")
                self.send_response(500)
                self.end_headers()
                return
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            return

    return ThreadingHTTPServer((host, port), Handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hub", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--webhook-secret", required=True)
    parser.add_argument("--system-name", default="newsletter")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--smtp", default=None, help="host:port of an SMTP server")
    args = parser.parse_args()
    send = None
    if args.smtp:
        host, _, port = args.smtp.partition(":")

        def send(msg: EmailMessage) -> None:
            with smtplib.SMTP(host, int(port or 25)) as smtp:
                smtp.send_message(msg)

    service = Newsletter(HubClient(args.hub, args.api_key), system_name=args.system_name,
                         send=send)
    logging.basicConfig(level=logging.INFO)
    webhook_server(service, args.webhook_secret, args.port).serve_forever()


if __name__ == "__main__":
    main()
