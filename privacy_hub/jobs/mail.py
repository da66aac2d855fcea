"""Outgoing mail: message templates, and the two ways a message leaves the hub.

With ``PRIVACY_HUB_SMTP_HOST`` set, messages go out over SMTP (STARTTLS and login when
configured). Without it (the embedded default), each message is written as an ``.eml``
file into ``<instance>/outbox/`` and one log line names the file; `privacy-hub mail show`
prints a message with its link, so a developer can click through sign-in, double opt-in
and verification flows without a mail server.

Every mail is written in its recipient's language (privacy_hub/languages.py): each
sentence is a msgid of the pages' Babel catalogue, translated when the mail is rendered,
so the plain-text and HTML parts say the same thing from one source.

Logs never carry an address, and never a link: its one-time token would be a credential
in the log.
"""

from __future__ import annotations

import functools
import logging
import os
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, Protocol

from jinja2 import Environment, StrictUndefined
from jinja2 import Template as JinjaTemplate

from audit.clock import utcnow
from privacy_hub.config import Settings
from privacy_hub.jobs.mail_texts import TEMPLATES, render
from privacy_hub.languages import DEFAULT, normalise

__all__ = ["TEMPLATES", "Composed", "FolderMailer", "MailError", "Mailer", "SmtpMailer",
           "compose", "mailer_for"]

log = logging.getLogger(__name__)

OUTBOX_FOLDER = "outbox"

# A link is a URL, not HTML: its parts are urlencoded, never HTML-escaped.
_LINKS = Environment(autoescape=False, undefined=StrictUndefined)  # noqa: S701


@functools.lru_cache(maxsize=64)
def _link_template(source: str) -> JinjaTemplate:
    # Compiled once: compiling costs more than the rest of composing a mail's words.
    return _LINKS.from_string(source)


class MailError(Exception):
    """Sending failed; the message says how, never to whom."""


@dataclass(frozen=True)
class Composed:
    """A rendered mail, with its template's name and its link (for the outbox log)."""

    message: EmailMessage
    template: str
    link: str | None


def compose(template: str, *, to: str, sender: str, context: Mapping[str, Any],
            language: str = DEFAULT) -> Composed:
    """Render ``template`` for ``to`` in ``language`` (English for one the hub does not
    speak). ``context`` holds data, secrets and ``base_url``."""
    spec = TEMPLATES[template]
    language = normalise(language) or DEFAULT
    values = dict(context)
    link = values.get("link")
    if link is None and spec.link is not None:
        link = _link_template(spec.link).render(values)
    words = render(template, values, language, link)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = words.subject
    message["Date"] = formatdate(usegmt=True)
    domain = sender.rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(words.text)
    message.add_alternative(words.html, subtype="html")
    message["Content-Language"] = language  # after the parts: set_content drops Content-*
    return Composed(message, template, link)


class Mailer(Protocol):
    """How a composed mail leaves the hub (raise MailError when it cannot)."""

    def send(self, mail: Composed, *, job_id: str) -> None: ...


class SmtpMailer:
    """Sends over SMTP; STARTTLS (verified against the system's CAs) when configured."""

    def __init__(self, host: str, port: int, *, username: str | None = None,
                 password: str | None = None, starttls: bool = False,
                 timeout: float = 10.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.username, self.password, self.starttls = username, password, starttls

    def send(self, mail: Composed, *, job_id: str) -> None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(mail.message)
        except smtplib.SMTPRecipientsRefused:
            # Its message names the address: never pass it on.
            raise MailError("SMTP recipient refused") from None
        except smtplib.SMTPResponseException as exc:
            raise MailError(f"SMTP {exc.smtp_code}") from None
        except smtplib.SMTPException as exc:
            raise MailError(f"SMTP error ({type(exc).__name__})") from None
        except TimeoutError:
            raise MailError("timeout") from None
        except ConnectionRefusedError:
            raise MailError("connection refused") from None
        except ssl.SSLError:
            raise MailError("TLS error") from None
        except OSError as exc:
            raise MailError(f"connection error ({type(exc).__name__})") from None
        log.info("mail %s (%s) sent over SMTP", job_id, mail.template)


class FolderMailer:
    """Writes each message to ``<instance>/outbox/<time>-<job id>.eml`` (mode 0600)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, mail: Composed, *, job_id: str) -> None:
        name = f"{utcnow():%Y%m%dT%H%M%S}-{job_id}.eml"
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = self.folder / f".{name}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(mail.message.as_bytes())
            os.replace(tmp, self.folder / name)
        except OSError as exc:
            raise MailError(f"could not write to the outbox folder ({type(exc).__name__})") from None
        # The name only: a link carries a one-time token, and tokens never reach a log
        # (`privacy-hub mail show` prints the message, link included, to whoever asks).
        log.info("mail %s (%s) written to %s/%s", job_id, mail.template, OUTBOX_FOLDER, name)


def mailer_for(settings: Settings, *, timeout: float = 10.0) -> Mailer:
    """SMTP when a host is configured, else the instance's outbox folder."""
    if settings.smtp_host:
        return SmtpMailer(settings.smtp_host, settings.smtp_port,
                          username=settings.smtp_username, password=settings.smtp_password,
                          starttls=settings.smtp_starttls, timeout=timeout)
    return FolderMailer(settings.instance_path / OUTBOX_FOLDER)
