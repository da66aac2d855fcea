"""A real SMTP server on loopback (aiosmtpd) that keeps every message it is sent."""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller

from tests.e2e.live import free_port, wait_for


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.port = 0

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if address in str(m["To"])]

    def wait_for_mail(self, address: str, subject: str, *, after: int = 0,
                      timeout: float = 30.0) -> Message:
        """The newest mail to ``address`` whose subject holds ``subject``, past the first
        ``after`` such mails."""
        def found() -> Message | None:
            mails = [m for m in self.to(address) if subject in str(m["Subject"])]
            return mails[-1] if len(mails) > after else None
        return wait_for(f"a mail '{subject}'", found, timeout=timeout)  # type: ignore[no-any-return]


def text_of(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            return payload.decode() if isinstance(payload, bytes) else str(payload)
    raise AssertionError("no text/plain part")


def link_in(message: Message, pattern: str = r"https?://\S+") -> str:
    match = re.search(pattern, text_of(message))
    assert match, "no link in the mail"
    return match.group(0)


@contextmanager
def smtp_server() -> Iterator[Inbox]:
    inbox = Inbox()
    inbox.port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()
