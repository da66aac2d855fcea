"""Outgoing mail: message templates, and the two ways a message leaves the hub.

With ``PRIVACY_HUB_SMTP_HOST`` set, messages go out over SMTP (STARTTLS and login when
configured). Without it (the embedded default), each message is written as an ``.eml``
file into ``<instance>/outbox/`` and one log line names the file; `privacy-hub mail show`
prints a message with its link, so a developer can click through sign-in, double opt-in
and verification flows without a mail server.

Logs never carry an address, and never a link: its one-time token would be a credential
in the log.
"""

from __future__ import annotations

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

from audit.clock import utcnow
from privacy_hub.config import Settings

log = logging.getLogger(__name__)

OUTBOX_FOLDER = "outbox"


@dataclass(frozen=True)
class Template:
    """A mail: Jinja sources for subject, plain text, HTML, and the link it carries."""

    subject: str
    text: str
    html: str
    #: builds the link from the context; a ``link`` given in the job's secrets wins
    link: str | None = None


_FOOTER_TEXT = "\n-- \nThis message was sent by the privacy service of the shop.\n"
_FOOTER_HTML = "<p style=\"color:#555;font-size:small\">This message was sent by the privacy service of the shop.</p>"

TEMPLATES: dict[str, Template] = {
    # Double opt-in (DESIGN.md "Consent and the gate"): data.purpose_title, secrets.token.
    "consent_confirmation": Template(
        subject="Please confirm: {{ purpose_title }}",
        text=("Hello,\n\nplease confirm that you agree to: {{ purpose_title }}.\n\n"
              "Open this link to confirm:\n{{ link }}\n"
              "{% if expires_at is defined %}The link works until {{ expires_at }}.\n{% endif %}\n"
              "If you did not ask for this, ignore this message; nothing changes.\n"
              + _FOOTER_TEXT),
        html=("<p>Hello,</p><p>please confirm that you agree to: "
              "<strong>{{ purpose_title }}</strong>.</p>"
              "<p><a href=\"{{ link }}\">Confirm</a></p>"
              "{% if expires_at is defined %}<p>The link works until {{ expires_at }}.</p>{% endif %}"
              "<p>If you did not ask for this, ignore this message; nothing changes.</p>"
              + _FOOTER_HTML),
        link="{{ base_url }}/consent/confirm?token={{ token | urlencode }}",
    ),
    # Portal sign-in (single use, 15 minutes): secrets.token; the link carries it in the
    # query string, which the access log never records.
    "portal_sign_in": Template(
        subject="Your sign-in link",
        text=("Hello,\n\nopen this link to see and manage your data:\n{{ link }}\n\n"
              "It works once, for {{ minutes }} minutes. If you did not ask for it, ignore "
              "this message; nobody can sign in without it.\n" + _FOOTER_TEXT),
        html=("<p>Hello,</p><p><a href=\"{{ link }}\">Sign in to see and manage your data</a></p>"
              "<p>It works once, for {{ minutes }} minutes. If you did not ask for it, ignore "
              "this message; nobody can sign in without it.</p>" + _FOOTER_HTML),
        link="{{ base_url }}/portal/sign-in/confirm?token={{ token | urlencode }}",
    ),
    # The same request for an address that belongs to no customer: only the mailbox's
    # owner learns that (no account enumeration on the page or in its timing).
    "portal_no_account": Template(
        subject="Your sign-in request",
        text=("Hello,\n\nsomeone asked to sign in to the privacy portal with this address, "
              "but we hold no customer account under it. If you shop with us under another "
              "address, ask for a link with that one.\n\nIf it was not you, ignore this "
              "message.\n" + _FOOTER_TEXT),
        html=("<p>Hello,</p><p>someone asked to sign in to the privacy portal with this "
              "address, but we hold no customer account under it. If you shop with us under "
              "another address, ask for a link with that one.</p><p>If it was not you, ignore "
              "this message.</p>" + _FOOTER_HTML),
    ),
    # Identity check for a data subject request: data.request_id, data.request_type,
    # secrets.token (or a ready secrets.link).
    "request_verification": Template(
        subject="Confirm your privacy request",
        text=("Hello,\n\nwe received a request ({{ request_type }}) for the data we hold "
              "about this address. Open this link to confirm it was you:\n{{ link }}\n\n"
              "If you did not make this request, ignore this message.\n" + _FOOTER_TEXT),
        html=("<p>Hello,</p><p>we received a request ({{ request_type }}) for the data we "
              "hold about this address.</p><p><a href=\"{{ link }}\">Confirm it was me</a></p>"
              "<p>If you did not make this request, ignore this message.</p>" + _FOOTER_HTML),
        link="{{ base_url }}/requests/{{ request_id | urlencode }}/verify?token={{ token | urlencode }}",
    ),
    # Art. 12(3): the subject is told of an extension and why: data.due_at, data.reason.
    "request_extended": Template(
        subject="Your privacy request needs more time",
        text=("Hello,\n\nwe need more time to complete your privacy request. The new "
              "deadline is {{ due_at }}.\n\nWhy: {{ reason }}\n" + _FOOTER_TEXT),
        html=("<p>Hello,</p><p>we need more time to complete your privacy request. The new "
              "deadline is {{ due_at }}.</p><p>Why: {{ reason }}</p>" + _FOOTER_HTML),
    ),
    # Art. 12(4): the reason, and the right to complain and to a judicial remedy.
    "request_rejected": Template(
        subject="About your privacy request",
        text=("Hello,\n\nwe cannot act on your privacy request.\n\nWhy: {{ reason }}\n\n"
              "You have the right to lodge a complaint with a data protection supervisory "
              "authority, in particular in the EU member state where you live or work, and "
              "to seek a judicial remedy (Art. 77 and 79 GDPR).\n" + _FOOTER_TEXT),
        html=("<p>Hello,</p><p>we cannot act on your privacy request.</p><p>Why: "
              "{{ reason }}</p><p>You have the right to lodge a complaint with a data "
              "protection supervisory authority, in particular in the EU member state where "
              "you live or work, and to seek a judicial remedy (Art. 77 and 79 GDPR).</p>"
              + _FOOTER_HTML),
    ),
    # Access/portability answer ready: secrets.link (signed, expiring), data.expires_at.
    "request_completed": Template(
        subject="Your data is ready to download",
        text=("Hello,\n\nthe copy of your data you asked for is ready. Download it here "
              "(the link works until {{ expires_at }}):\n{{ link }}\n\n"
              "The file is kept for 30 days, then deleted.\n" + _FOOTER_TEXT),
        html=("<p>Hello,</p><p>the copy of your data you asked for is ready.</p>"
              "<p><a href=\"{{ link }}\">Download it</a> (the link works until "
              "{{ expires_at }}).</p><p>The file is kept for 30 days, then deleted.</p>"
              + _FOOTER_HTML),
    ),
    # Art. 18(3): the subject is told before a restriction is lifted: data.note.
    "restriction_lifting": Template(
        subject="The restriction of your data is being lifted",
        text=("Hello,\n\nthe restriction of processing of your personal data that you asked "
              "for is being lifted.\n\n{{ note }}\n\nIf you disagree, reply to this message "
              "or use your right to object.\n" + _FOOTER_TEXT),
        html=("<p>Hello,</p><p>the restriction of processing of your personal data that you "
              "asked for is being lifted.</p><p>{{ note }}</p><p>If you disagree, reply to "
              "this message or use your right to object.</p>" + _FOOTER_HTML),
    ),
    # To the DPO (PRIVACY_HUB_DPO_EMAIL): data.request_id, data.request_type, data.due_at,
    # data.overdue (the deadline has passed). A link to the request's console page (ids
    # only: the page asks the DPO to sign in).
    "deadline_reminder": Template(
        subject="{% if overdue | default(false) %}Privacy request overdue since {{ due_at }}"
                "{% else %}Privacy request due {{ due_at }}{% endif %}",
        text=("The {{ request_type }} request {{ request_id }} "
              "{% if overdue | default(false) %}is overdue: it was due {{ due_at }}{% else %}is due {{ due_at }}"
              "{% endif %} (Art. 12(3) GDPR).\n\nOpen it in the privacy console:\n"
              "{{ base_url }}/console/requests/{{ request_id | urlencode }}\n" + _FOOTER_TEXT),
        html=("<p>The {{ request_type }} request <code>{{ request_id }}</code> "
              "{% if overdue | default(false) %}is overdue: it was due {{ due_at }}{% else %}is due "
              "{{ due_at }}{% endif %} (Art. 12(3) GDPR).</p><p><a href=\"{{ base_url }}"
              "/console/requests/{{ request_id | urlencode }}\">Open it in the privacy "
              "console</a></p>" + _FOOTER_HTML),
    ),
}

# Plain text is not HTML: escaping it would corrupt it. The HTML environment escapes.
_TEXT = Environment(autoescape=False, undefined=StrictUndefined, keep_trailing_newline=True)  # noqa: S701
_HTML = Environment(autoescape=True, undefined=StrictUndefined)


class MailError(Exception):
    """Sending failed; the message says how, never to whom."""


@dataclass(frozen=True)
class Composed:
    """A rendered mail, with its template's name and its link (for the outbox log)."""

    message: EmailMessage
    template: str
    link: str | None


def compose(template: str, *, to: str, sender: str, context: Mapping[str, Any]) -> Composed:
    """Render ``template`` for ``to``. ``context`` holds data, secrets and ``base_url``."""
    spec = TEMPLATES[template]
    values = dict(context)
    link = values.get("link")
    if link is None and spec.link is not None:
        link = _TEXT.from_string(spec.link).render(values)
    values["link"] = link
    subject = " ".join(_TEXT.from_string(spec.subject).render(values).split())
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    domain = sender.rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(_TEXT.from_string(spec.text).render(values))
    message.add_alternative(_HTML.from_string(spec.html).render(values), subtype="html")
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
