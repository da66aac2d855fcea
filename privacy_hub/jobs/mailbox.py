"""The embedded default's mail, read back: ``privacy-hub mail list`` and ``mail show``.

With no SMTP host the hub writes each message to ``<instance>/outbox/`` (jobs/mail.py)
and logs only the file's name, never its link: a developer reads links here instead.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path


@dataclass(frozen=True)
class StoredMail:
    """One message in the outbox folder."""

    id: str
    path: Path
    to: str
    subject: str
    date: str


def _read(path: Path) -> EmailMessage:
    with path.open("rb") as fh:
        message = email.message_from_binary_file(fh, policy=email.policy.default)
    if not isinstance(message, EmailMessage):  # pragma: no cover - the default policy makes one
        raise TypeError("not an email message")
    return message


def stored_mails(folder: Path) -> list[StoredMail]:
    """The folder's messages, oldest first (their names start with the time written)."""
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.eml")):
        message = _read(path)
        found.append(StoredMail(id=path.stem, path=path, to=str(message["To"] or ""),
                                subject=str(message["Subject"] or ""),
                                date=str(message["Date"] or "")))
    return found


def find(folder: Path, which: str) -> StoredMail | None:
    """``latest``, a whole id, or the start of one (the job id's first characters do)."""
    mails = stored_mails(folder)
    if not mails:
        return None
    if which == "latest":
        return mails[-1]
    matches = [m for m in mails if m.id == which or m.id.split("-", 1)[-1].startswith(which)
               or m.id.startswith(which)]
    return matches[-1] if matches else None


def plain_text(mail: StoredMail) -> str:
    """Headers a reader needs, then the plain-text body (links included)."""
    message = _read(mail.path)
    body = message.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else ""
    return (f"To: {mail.to}\nSubject: {mail.subject}\nDate: {mail.date}\nFile: {mail.path}\n\n"
            + str(text))
